package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// Server errors.
var (
	// ErrServerStarted is returned by Start when the Server was started before.
	ErrServerStarted = errors.New("cluster: server already started")
	// ErrServerNotReady is returned by Start when the NATS server does not
	// accept connections within ServerOptions.ReadyTimeout.
	ErrServerNotReady = errors.New("cluster: nats server not ready")
)

// DefaultReadyTimeout is ServerOptions.ReadyTimeout's default.
const DefaultReadyTimeout = 10 * time.Second

// DefaultMaxConnections is ServerOptions.MaxConnections's default: room
// for the Nodes of many workers (one connection each), far below the
// master's open-file limit.
const DefaultMaxConnections = 1024

// ServerOptions configure an embedded NATS server. The zero value listens on
// 127.0.0.1 at a random port, stand-alone, with nothing logged.
type ServerOptions struct {
	// Host is the address clients (the Nodes) connect to (default
	// "127.0.0.1"). The embedded server has no authentication: keep it on
	// loopback or a private network. To span machines on an untrusted
	// network, run a real NATS cluster with authentication and TLS, and
	// give its URL to the Nodes instead of embedding.
	Host string
	// Port is the client port; 0 picks a free one (Start returns it).
	Port int
	// Name is the server's name in NATS logs and monitoring (default: a
	// generated id).
	Name string
	// Token, when set, is required of every client: Start's URL carries
	// it ("nats://TOKEN@host:port"), so Nodes given that URL present it.
	// Without it any process that reaches the port may publish to the
	// connections of the cluster.
	Token string
	// MaxPayload caps one message in bytes (default: NATS's, 1 MiB). A
	// Node's Send* calls fail with nats.ErrMaxPayload above it.
	MaxPayload int32
	// MaxConnections caps the client connections the server holds
	// (default DefaultMaxConnections; -1 leaves NATS's own cap, 65,536).
	// The server lives in the master process: a cap below the master's
	// open-file limit keeps a flood of connections to the port from
	// taking the descriptors the master needs for its workers and its
	// control socket. A client over the cap is told "maximum connections
	// exceeded" and closed.
	MaxConnections int
	// Cluster, when set, lets this server form a NATS cluster with the
	// servers of other machines (routes): messages of Nodes connected to
	// any of them reach Nodes connected to all of them.
	Cluster *ClusterOptions
	// ReadyTimeout bounds Start's wait for the server (and its route
	// listener) to be ready (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// Logger receives the NATS server's log, bridged: notices at debug
	// level, warnings at warn, errors and fatal errors at error. Nothing is
	// written to stdout or stderr.
	Logger zerolog.Logger
	// Debug and Trace forward NATS's debug and protocol trace lines (at
	// zerolog's debug and trace levels). Trace logs every message: only
	// for debugging.
	Debug, Trace bool
}

// ClusterOptions make an embedded server a member of a NATS cluster.
type ClusterOptions struct {
	// Name must be the same on every server of the cluster (default "goes").
	Name string
	// Host is the address other servers connect to (default "127.0.0.1";
	// use a private address to span machines).
	Host string
	// Port is the route port; 0 picks a free one (see Server.RouteURL).
	Port int
	// Routes are the route URLs of other servers ("nats-route://host:port",
	// with "user:password@" when they require it). One reachable member is
	// enough: servers gossip the rest.
	Routes []string
	// Username and Password, when set, are required of the servers that
	// route to this one; RouteURL carries them.
	Username, Password string
}

// Server is a NATS server embedded in the master process: the single-machine
// default that lets the workers' Nodes talk to each other without anything
// else installed.
//
// A deployment that already runs NATS does not use Server at all: its Nodes
// connect to the existing cluster's URL (NodeOptions.URL).
//
// A Server is started once; its methods are safe for concurrent use.
type Server struct {
	o ServerOptions

	mu      sync.Mutex
	ns      *server.Server
	started bool
	log     *logBridge
}

// NewServer returns a Server for o; Start starts it.
func NewServer(o ServerOptions) *Server {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.Cluster != nil {
		c := *o.Cluster
		if c.Name == "" {
			c.Name = "goes"
		}
		if c.Host == "" {
			c.Host = "127.0.0.1"
		}
		c.Routes = append([]string(nil), c.Routes...)
		o.Cluster = &c
	}
	return &Server{o: o}
}

// Start starts the NATS server and waits until it accepts connections (and,
// with Cluster, listens for routes). It returns the URL the Nodes connect to,
// "nats://host:port". It fails with ErrServerNotReady, wrapping the server's
// last error (a port in use, say), when the server is not ready within
// ReadyTimeout; the server is then shut down.
func (s *Server) Start() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return "", ErrServerStarted
	}
	s.started = true

	opts, err := s.options(s.o.Cluster)
	if err != nil {
		return "", err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return "", fmt.Errorf("cluster: nats server: %w", err)
	}
	o := s.o
	s.log = &logBridge{log: o.Logger}
	ns.SetLoggerV2(s.log, o.Debug, o.Trace, false)
	ns.Start()
	if !ns.ReadyForConnections(o.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		if last := s.log.lastError(); last != "" {
			return "", fmt.Errorf("%w within %s: %s", ErrServerNotReady, o.ReadyTimeout, last)
		}
		return "", fmt.Errorf("%w within %s", ErrServerNotReady, o.ReadyTimeout)
	}
	s.ns = ns
	ev := o.Logger.Info().Str("url", ns.ClientURL()).Bool("token", o.Token != "")
	if ra := ns.ClusterAddr(); ra != nil {
		ev = ev.Str("route_url", routeURL(ra, nil))
	}
	ev.Msg("nats server started")
	return s.clientURL(ns), nil
}

// clientURL is the URL of ns with the token.
func (s *Server) clientURL(ns *server.Server) string {
	u := ns.ClientURL()
	if s.o.Token != "" {
		u = strings.Replace(u, "://", "://"+url.User(s.o.Token).String()+"@", 1)
	}
	return u
}

// options are the NATS server's options for o and cluster c.
func (s *Server) options(c *ClusterOptions) (*server.Options, error) {
	o := s.o
	opts := &server.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		MaxPayload: o.MaxPayload,
		MaxConn:    max(o.MaxConnections, 0), // 0: NATS's default
		NoLog:      true,
		NoSigs:     true,
		Debug:      o.Debug,
		Trace:      o.Trace,
	}
	opts.Authorization = o.Token
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if c != nil {
		opts.Cluster.Name = c.Name
		opts.Cluster.Host = c.Host
		opts.Cluster.Port = c.Port
		opts.Cluster.Username = c.Username
		opts.Cluster.Password = c.Password
		if opts.Cluster.Port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("cluster: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	return opts, nil
}

// URL is the client URL of a started server (with the token, as Start
// returns it), "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil {
		return ""
	}
	return s.clientURL(s.ns)
}

// RouteURL is the URL other servers list in ClusterOptions.Routes to join
// this one (with the route credentials), "" without Cluster or before
// Start.
func (s *Server) RouteURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil {
		return ""
	}
	ra := s.ns.ClusterAddr()
	if ra == nil {
		return ""
	}
	var user *url.Userinfo
	if c := s.o.Cluster; c.Username != "" {
		user = url.UserPassword(c.Username, c.Password)
	}
	return routeURL(ra, user)
}

// NumRoutes is the number of route connections to other servers.
func (s *Server) NumRoutes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil {
		return 0
	}
	return s.ns.NumRoutes()
}

// DropRoutes removes ClusterOptions.Routes from a running server: it
// closes the routes to those servers and stops trying to reach them again
// (a NATS server retries the routes it was given forever, and says so in
// its log every time). The route listener stays: other servers may still
// join this one. goes's master calls it when the previous generation, whose
// server it routed to during an upgrade, has exited.
func (s *Server) DropRoutes() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil || s.o.Cluster == nil || len(s.o.Cluster.Routes) == 0 {
		return nil
	}
	c := *s.o.Cluster
	c.Routes = nil
	opts, err := s.options(&c)
	if err != nil {
		return err
	}
	// Random ports (-1) stand for the ones the server picked.
	if err := s.ns.ReloadOptions(opts); err != nil {
		return fmt.Errorf("cluster: drop routes: %w", err)
	}
	s.o.Cluster = &c
	return nil
}

// Shutdown stops the server: clients are disconnected (Nodes reconnect to
// another server of the cluster if they know one, or keep retrying) and
// every goroutine of the server has ended when it returns. Calling it more
// than once, or before Start, is harmless.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	s.o.Logger.Info().Msg("nats server stopped")
}

// interest reports whether the server knows a subscriber for subject, its
// own clients' or, through routes, other servers'. For tests.
func (s *Server) interest(subject string) bool {
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	if ns == nil {
		return false
	}
	return ns.GlobalAccount().SubscriptionInterest(subject)
}

// routeNames returns the names of the servers this one has routes to (a
// name once per route connection). For tests.
func (s *Server) routeNames() []string {
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	if ns == nil {
		return nil
	}
	rz, err := ns.Routez(nil)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(rz.Routes))
	for _, r := range rz.Routes {
		names = append(names, r.RemoteName)
	}
	return names
}

func routeURL(a *net.TCPAddr, user *url.Userinfo) string {
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	u := url.URL{Scheme: "nats-route", User: user, Host: net.JoinHostPort(host, strconv.Itoa(a.Port))}
	return u.String()
}

// logBridge is the NATS server's logger: it writes to a zerolog.Logger and
// never exits the process (NATS's own Fatalf would).
type logBridge struct {
	log  zerolog.Logger
	last atomic.Pointer[string]
}

var _ server.Logger = (*logBridge)(nil)

func (l *logBridge) lastError() string {
	if p := l.last.Load(); p != nil {
		return *p
	}
	return ""
}

func (l *logBridge) Noticef(format string, v ...any) {
	l.log.Debug().Str("nats", fmt.Sprintf(format, v...)).Msg("nats server notice")
}

func (l *logBridge) Warnf(format string, v ...any) {
	l.log.Warn().Str("nats", fmt.Sprintf(format, v...)).Msg("nats server warning")
}

func (l *logBridge) Errorf(format string, v ...any) {
	m := fmt.Sprintf(format, v...)
	l.last.Store(&m)
	l.log.Error().Str("nats", m).Msg("nats server error")
}

func (l *logBridge) Fatalf(format string, v ...any) {
	m := fmt.Sprintf(format, v...)
	l.last.Store(&m)
	l.log.Error().Str("nats", m).Msg("nats server fatal error")
}

func (l *logBridge) Debugf(format string, v ...any) {
	l.log.Debug().Str("nats", fmt.Sprintf(format, v...)).Msg("nats server debug")
}

func (l *logBridge) Tracef(format string, v ...any) {
	l.log.Trace().Str("nats", fmt.Sprintf(format, v...)).Msg("nats server trace")
}
