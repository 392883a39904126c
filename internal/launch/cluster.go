//go:build unix

// Package launch holds the start-up of the master and worker processes
// that needs no Goer: the master's side of the cluster and a worker's
// Node, the logger, the user and group of the workers, the daemon's
// arguments. The root package turns its Config and Goers into the plain
// values these take.
package launch

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// Cluster is the master's side of the cluster: the NATS URL the
// workers use and, unless the config names one, the embedded server.
type Cluster struct {
	URL    string // what the workers connect to (WorkerEnv.ClusterURL)
	prefix string
	srv    *cluster.Server // nil when joining an existing NATS
	log    zerolog.Logger
}

// routeWait bounds how long a master started by an upgrade waits for its
// embedded server's route to the previous generation's before it forks
// its workers.
const routeWait = 5 * time.Second

// StartCluster starts the master's side of the cluster: it joins
// natsURL, or, when that is empty, starts the embedded server. After an
// upgrade (prevRoute: the previous master's route URL, from its
// master.Upgrader; "" otherwise) the embedded server routes to the
// previous master's, so that the old workers, still draining, and the
// new ones reach each other.
func StartCluster(natsURL, prefix, prevRoute string, log zerolog.Logger) (*Cluster, error) {
	mc := &Cluster{prefix: prefix, log: log}
	if err := cluster.CheckPrefix(mc.prefix); err != nil {
		return nil, fmt.Errorf("goes: cluster: %w", err)
	}
	if natsURL != "" {
		mc.URL = natsURL
		log.Info().Str("url", cluster.RedactURL(mc.URL)).Str("prefix", mc.prefix).Msg("cluster joins nats")
		return mc, nil
	}
	// The embedded server always listens for routes on loopback: the
	// master that a reload starts joins it there. Clients and routes need
	// secrets that only this master and its workers know (their
	// environment), so that other local users cannot publish to the
	// connections.
	co := &cluster.ClusterOptions{Username: "goes", Password: secret()}
	if prevRoute != "" {
		co.Routes = []string{prevRoute}
	}
	mc.srv = cluster.NewServer(cluster.ServerOptions{Cluster: co, Token: secret(), Logger: log})
	url, err := mc.srv.Start()
	if err != nil {
		return nil, fmt.Errorf("goes: cluster: %w", err)
	}
	mc.URL = url
	if len(co.Routes) > 0 {
		log.Info().Msg("cluster routes to the previous generation")
		deadline := time.Now().Add(routeWait)
		for mc.srv.NumRoutes() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if mc.srv.NumRoutes() == 0 {
			log.Warn().Str("route", co.Routes[0]).Msg("cluster route to the previous generation not up: messages between the generations are lost until it is")
		}
	}
	return mc, nil
}

// RouteURL is the embedded server's route URL, which a reload hands to
// the next master (master.Options.ClusterRoute); empty without one.
func (mc *Cluster) RouteURL() string {
	if mc == nil || mc.srv == nil {
		return ""
	}
	return mc.srv.RouteURL()
}

// Info describes the cluster in status.
func (mc *Cluster) Info() *ipc.ClusterInfo {
	if mc == nil {
		return nil
	}
	ci := &ipc.ClusterInfo{URL: cluster.RedactURL(mc.URL), Prefix: mc.prefix, Embedded: mc.srv != nil}
	if mc.srv != nil {
		ci.Routes = mc.srv.NumRoutes()
	}
	return ci
}

// secret returns 128 random bits in hex.
func secret() string {
	var b [16]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PreviousExited drops the embedded server's route to the previous
// generation, gone now (NATS would retry it forever).
func (mc *Cluster) PreviousExited() {
	if mc == nil || mc.srv == nil {
		return
	}
	if err := mc.srv.DropRoutes(); err != nil {
		mc.log.Warn().Err(err).Msg("cluster route to the previous generation not dropped")
	}
}

// Stop shuts the embedded server down, once the workers have exited.
func (mc *Cluster) Stop() {
	if mc != nil && mc.srv != nil {
		mc.srv.Shutdown()
	}
}

// maxRouteTries bounds how often a worker draws a new route when its
// master's is taken in the cluster (another master's worker drew the same).
const maxRouteTries = 3

// StartNode connects a worker to the cluster at url (its master's
// WorkerEnv.ClusterURL) as name, and returns its Node and the route its
// connection ids carry: the master's, unless another Node of the
// cluster already answers for it; then a random one.
func StartNode(url, prefix, name string, id procenv.Identity, log zerolog.Logger) (*cluster.Node, uint32, error) {
	if url == "" {
		return nil, 0, errors.New("goes: cluster on, but the master passed no NATS URL")
	}
	host, _ := os.Hostname()
	route := id.Route
	for try := 1; ; try++ {
		node, err := cluster.NewNode(cluster.NodeOptions{
			URL:    url,
			IDBase: uint64(route) << 32,
			Prefix: prefix,
			Name:   fmt.Sprintf("%s/%d/%s/%d", host, os.Getpid(), name, id.Index),
			Logger: log,
			FanOut: fanOut(),
		})
		if errors.Is(err, cluster.ErrRouteInUse) && try < maxRouteTries {
			next := rand.Uint32() | 1
			log.Warn().Uint32("route", route).Uint32("new_route", next).Msg("cluster route in use, drawing another")
			route = next
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("goes: worker %d: %w", id.ID, err)
		}
		return node, route, nil
	}
}

// NodeStats is a Node's line in status.
func NodeStats(n *cluster.Node) *ipc.NodeStats {
	st := n.Stats()
	return &ipc.NodeStats{
		Name: n.Name(), Connected: n.Connected(), Peers: st.Peers, Connections: st.Connections, Topics: st.Topics,
		Delivered: st.Delivered, NotHere: st.NotHere, SendErrors: st.SendErrors, Malformed: st.Malformed, Dropped: st.Dropped,
	}
}

// fanOut returns a Node's FanOut: one connections.Fanout, used by the
// Node's delivery goroutine only.
func fanOut() func([]cluster.Conn, []byte) int {
	var f connections.Fanout
	return func(conns []cluster.Conn, data []byte) int {
		other := 0
		f.Begin(data, false)
		for _, c := range conns {
			if cc, ok := c.(connections.Connection); ok {
				_ = f.Add(cc) // a refusal is counted by End's result
			} else if c.SendBytes(data, false) == nil {
				other++
			}
		}
		return f.End() + other
	}
}
