//go:build unix

package main_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// natsFailToken is the token of the test's NATS cluster: the masters name
// one server each, with the token, and must reach the others (discovered
// from the cluster, without it) after a failure.
const natsFailToken = "natsfail-token"

// natsNode is one server of a NATS cluster embedded in the test process.
// Kill stands for its death: its clients and routes see their connections
// closed, as when the process dies.
type natsNode struct {
	name string
	ns   *server.Server
}

// startNATSNode starts a NATS server on loopback (random client and route
// ports) that routes to the route URLs given.
func startNATSNode(t *testing.T, name string, routes ...string) *natsNode {
	t.Helper()
	opts := &server.Options{
		ServerName:    name,
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: natsFailToken,
		NoLog:         true,
		NoSigs:        true,
		Cluster:       server.ClusterOpts{Name: "natsfail", Host: "127.0.0.1", Port: server.RANDOM_PORT},
	}
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatalf("nats %s not ready", name)
	}
	n := &natsNode{name: name, ns: ns}
	t.Cleanup(n.kill)
	return n
}

// url is the client URL, with the token.
func (n *natsNode) url() string {
	return strings.Replace(n.ns.ClientURL(), "://", "://"+natsFailToken+"@", 1)
}

func (n *natsNode) routeURL() string {
	return fmt.Sprintf("nats-route://127.0.0.1:%d", n.ns.ClusterAddr().Port)
}

func (n *natsNode) kill() {
	n.ns.Shutdown()
	n.ns.WaitForShutdown()
}

// peers are the names of the servers this one has routes to.
func (n *natsNode) peers() []string {
	rz, err := n.ns.Routez(nil)
	if err != nil {
		return nil
	}
	var names []string
	for _, r := range rz.Routes {
		if !slices.Contains(names, r.RemoteName) {
			names = append(names, r.RemoteName)
		}
	}
	sort.Strings(names)
	return names
}

// clients counts the client connections of process pid (a goes Node is
// named "host/pid/listener/index").
func (n *natsNode) clients(pid int) int {
	cz, err := n.ns.Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		return 0
	}
	c := 0
	for _, ci := range cz.Conns {
		if strings.Contains(ci.Name, fmt.Sprintf("/%d/", pid)) {
			c++
		}
	}
	return c
}

// waitMesh waits until every node routes to every other.
func waitMesh(t *testing.T, nodes ...*natsNode) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "nats full mesh", func() error {
		for _, n := range nodes {
			var want []string
			for _, o := range nodes {
				if o != n {
					want = append(want, o.name)
				}
			}
			sort.Strings(want)
			if got := n.peers(); !slices.Equal(got, want) {
				return fmt.Errorf("%s routes to %v, want %v", n.name, got, want)
			}
		}
		return nil
	})
}

// reconnects reads master s's log for its workers' NATS disconnections
// and connections since a moment, one line per worker; it fails until
// every worker of st has connected again.
func reconnects(s *setup, st ipc.Status, since time.Time) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
	if err != nil {
		return nil, err
	}
	events := map[int][]string{}
	connected := map[int]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Message string `json:"message"`
			PID     int    `json:"pid"`
			Time    string `json:"time"`
			Server  string `json:"server"`
			Error   string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || (e.Message != "nats disconnected" && e.Message != "nats connected" && e.Message != "nats reconnect attempt failed") {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil || tm.Before(since) {
			continue
		}
		ev := fmt.Sprintf("%s at +%s", strings.TrimPrefix(e.Message, "nats "), tm.Sub(since).Round(time.Millisecond))
		if e.Server != "" {
			ev += " to " + e.Server
		}
		if e.Error != "" {
			ev += fmt.Sprintf(" (%s)", e.Error)
		}
		events[e.PID] = append(events[e.PID], ev)
		connected[e.PID] = connected[e.PID] || e.Message == "nats connected"
	}
	var out []string
	for _, w := range st.Workers {
		if !connected[w.PID] {
			return nil, fmt.Errorf("worker pid %d: not connected again (%v)", w.PID, events[w.PID])
		}
		out = append(out, fmt.Sprintf("worker pid %d: %s", w.PID, strings.Join(events[w.PID], ", ")))
	}
	return out, nil
}

// newNATSFailMaster is a goes-master with one chat listener of count
// workers that joins the NATS at natsURL.
func newNATSFailMaster(t *testing.T, listener string, count int, natsURL string) *setup {
	t.Helper()
	return newChatSetupWith(t, fmt.Sprintf(`{"nats_url": %q, "prefix": "natsfail"}`, natsURL),
		fmt.Sprintf(`{"name": %q, "listen": "text://127.0.0.1:0", "count": %d, "handler": "chat"}`, listener, count))
}

// fanPublisher sends "group room <name> <seq>" at a fixed rate and keeps
// when it sent each message and what the chat handler answered.
type fanPublisher struct {
	name string
	cl   *chatClient
	done chan struct{} // closed when it stops sending

	mu      sync.Mutex
	sentAt  []time.Time // by seq
	answers []string    // by seq, as they come
	werr    error
}

func (p *fanPublisher) run(every time.Duration, stop <-chan struct{}, wg *sync.WaitGroup) {
	p.done = make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for line := range p.cl.lines {
			p.mu.Lock()
			p.answers = append(p.answers, line)
			p.mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		defer close(p.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for seq := 0; ; seq++ {
			p.mu.Lock()
			p.sentAt = append(p.sentAt, time.Now())
			p.mu.Unlock()
			p.cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(p.cl.c, "group room %s %d\n", p.name, seq); err != nil {
				p.mu.Lock()
				p.werr = err
				p.mu.Unlock()
				return
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
}

// sent is the number of messages sent so far.
func (p *fanPublisher) sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sentAt)
}

// fanReceiver counts, per publisher and seq, the messages one member of
// the group received.
type fanReceiver struct {
	name string
	cl   *chatClient

	mu       sync.Mutex
	got      map[string]map[int]int       // publisher → seq → deliveries
	at       map[string]map[int]time.Time // first arrival
	last     map[string]int               // last seq received
	reorders []string
	strange  []string
}

func (r *fanReceiver) run(wg *sync.WaitGroup) {
	r.got = map[string]map[int]int{}
	r.at = map[string]map[int]time.Time{}
	r.last = map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for line := range r.cl.lines {
			now := time.Now()
			pub, seqStr, _ := strings.Cut(line, " ")
			seq, err := strconv.Atoi(seqStr)
			r.mu.Lock()
			if err != nil {
				r.strange = append(r.strange, line)
				r.mu.Unlock()
				continue
			}
			if r.got[pub] == nil {
				r.got[pub] = map[int]int{}
				r.at[pub] = map[int]time.Time{}
				r.last[pub] = -1
			}
			if r.got[pub][seq] == 0 {
				r.at[pub][seq] = now
			}
			r.got[pub][seq]++
			if seq <= r.last[pub] {
				r.reorders = append(r.reorders, fmt.Sprintf("%s %d after %d", pub, seq, r.last[pub]))
			}
			r.last[pub] = max(r.last[pub], seq)
			r.mu.Unlock()
		}
	}()
}

func (r *fanReceiver) has(pub string, seq int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[pub][seq] > 0
}

// presenceProbe asks "count room" and "online <uid>" in turn over one
// chat connection and keeps every answer that is neither right nor
// ErrPartial.
type presenceProbe struct {
	cl   *chatClient
	uid  string
	want int

	mu      sync.Mutex
	asked   int
	partial int
	wrong   []string
}

func (q *presenceProbe) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cmd, want := "count room", fmt.Sprintf("count %d", q.want)
			if i%2 == 1 {
				cmd, want = "online "+q.uid, "online true"
			}
			q.cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintf(q.cl.c, "%s\n", cmd); err != nil {
				q.record(cmd, "write: "+err.Error(), want)
				return
			}
			var got string
			select {
			case line, ok := <-q.cl.lines:
				if !ok {
					q.record(cmd, "connection closed", want)
					return
				}
				got = line
			case <-time.After(10 * time.Second):
				q.record(cmd, "no answer within 10 s", want)
				return
			}
			q.record(cmd, got, want)
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func (q *presenceProbe) record(cmd, got, want string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked++
	switch {
	case got == want:
	case strings.HasPrefix(got, "error ") && strings.Contains(got, "some nodes did not answer"):
		q.partial++
	default:
		q.wrong = append(q.wrong, fmt.Sprintf("%s %s: %q, want %q", time.Now().Format("15:04:05.000"), cmd, got, want))
	}
}

// TestClusterNATSNodeFailure: two goes masters share users and groups
// through a cluster of three NATS servers, each master on a different
// server (master A is given one server's URL and learns the others from
// the cluster; master B is given a list of two). A publisher on each
// master sends to a group with members on both masters at a fixed rate
// while, first, the server neither master uses dies (and comes back), and
// then the server master A uses dies. Without a restart of goes, A's Nodes
// reconnect to another server: deliveries resume within a few seconds,
// no message is ever delivered twice, every message published once the
// Nodes are back reaches every member exactly once, and presence answers
// are right throughout (or ErrPartial while a Node cannot answer).
// What was lost and for how long is logged.
//
// In "freeze", master A reaches its server through a proxy that stops
// forwarding without closing anything (a server that hangs, a link that
// black-holes): A's Nodes find out by NATS pings and reconnect, to
// another server or to the same one without the proxy.
func TestClusterNATSNodeFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		freeze bool
		within time.Duration // delivery complete again for messages sent this long after the failure
	}{
		{name: "kill", within: 5 * time.Second},
		{name: "freeze", freeze: true, within: 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { natsFailure(t, tc.freeze, tc.within) })
	}
}

func natsFailure(t *testing.T, freeze bool, within time.Duration) {
	n0 := startNATSNode(t, "n0")
	n1 := startNATSNode(t, "n1", n0.routeURL())
	n2 := startNATSNode(t, "n2", n0.routeURL(), n1.routeURL())
	waitMesh(t, n0, n1, n2)

	urlA := n1.url()
	var px *testkit.Blackhole
	if freeze {
		px = testkit.NewBlackhole(t, n1.ns.Addr().String())
		urlA = "nats://" + natsFailToken + "@" + px.Addr()
	}
	ma := newNATSFailMaster(t, "a", 2, urlA)
	mb := newNATSFailMaster(t, "b", 1, n2.url()+","+n0.url())
	sta, stb := ma.start(), mb.start()
	addrA, addrB := listenAddrs(t, sta)["a"], listenAddrs(t, stb)["b"]

	// Which server each master's Nodes use: A's all on n1, B's one on n2
	// or n0; the third is "other".
	var onB, other *natsNode
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "every node connected to its server", func() error {
		onB, other = nil, nil
		a := 0
		for _, w := range sta.Workers {
			a += n1.clients(w.PID)
		}
		if a != len(sta.Workers) {
			return fmt.Errorf("%d of A's %d nodes on n1", a, len(sta.Workers))
		}
		for _, n := range []*natsNode{n0, n2} {
			if n.clients(stb.Workers[0].PID) == 1 {
				onB = n
			} else {
				other = n
			}
		}
		if onB == nil {
			return fmt.Errorf("B's node on none of n0, n2")
		}
		return nil
	})
	t.Logf("master A on %s, master B on %s (given %s, %s), other %s", n1.name, onB.name, n2.name, n0.name, other.name)

	// Members: four on each master, the first of each bound to a user.
	const perSide = 4
	var recvs []*fanReceiver
	for side, addr := range map[string]string{"A": addrA, "B": addrB} {
		for i := range perSide {
			name := fmt.Sprintf("r%s%d", side, i)
			cl := dialChat(t, name, addr)
			cl.do("login " + name)
			cl.do("join room")
			recvs = append(recvs, &fanReceiver{name: name, cl: cl})
		}
	}
	sort.Slice(recvs, func(i, j int) bool { return recvs[i].name < recvs[j].name })
	pubA := &fanPublisher{name: "pA", cl: dialChat(t, "pA", addrA)}
	pubB := &fanPublisher{name: "pB", cl: dialChat(t, "pB", addrB)}
	pubs := []*fanPublisher{pubA, pubB}
	var cls []*chatClient
	for _, r := range recvs {
		cls = append(cls, r.cl)
	}
	// Every member reachable from both sides before the count starts (a
	// server learns a subscription of another a route round trip later).
	for _, p := range pubs {
		ensureInterest(t, p.cl, toGroup("room"), cls...)
	}
	qA := &presenceProbe{cl: dialChat(t, "qA", addrA), uid: "rB0", want: 2 * perSide}
	qB := &presenceProbe{cl: dialChat(t, "qB", addrB), uid: "rA0", want: 2 * perSide}
	askUntil(t, qA.cl, "count room", fmt.Sprintf("count %d", 2*perSide))
	askUntil(t, qB.cl, "count room", fmt.Sprintf("count %d", 2*perSide))

	var wg sync.WaitGroup
	stopPub, stopProbe := make(chan struct{}), make(chan struct{})
	for _, r := range recvs {
		r.run(&wg)
	}
	const every = 20 * time.Millisecond
	for _, p := range pubs {
		p.run(every, stopPub, &wg)
	}
	// The probes have their own group: they end (their last question
	// answered) before the connections close under them.
	var probes sync.WaitGroup
	qA.run(stopProbe, &probes)
	qB.run(stopProbe, &probes)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stopProbe)
			probes.Wait()
			for _, c := range append(cls, pubA.cl, pubB.cl, qA.cl, qB.cl) {
				c.c.Close()
			}
			wg.Wait()
		}
	}
	t.Cleanup(func() {
		select {
		case <-stopPub:
		default:
			close(stopPub)
		}
		stopAll()
	})

	// allGot reports whether every member has received seq of p.
	allGot := func(p *fanPublisher, seq int) bool {
		for _, r := range recvs {
			if !r.has(p.name, seq) {
				return false
			}
		}
		return true
	}
	// flowing waits until a message of each publisher sent after since
	// has reached every member.
	flowing := func(what string, since time.Time, d time.Duration) {
		t.Helper()
		testkit.Eventually(t, d, testkit.Poll, what, func() error {
			for _, p := range pubs {
				p.mu.Lock()
				sentAt := slices.Clone(p.sentAt)
				p.mu.Unlock()
				found := false
				for seq := len(sentAt) - 1; seq >= 0 && sentAt[seq].After(since) && !found; seq-- {
					found = allGot(p, seq)
				}
				if !found {
					return fmt.Errorf("%s: nothing sent after %s reached every member", p.name, since.Format("15:04:05.000"))
				}
			}
			return nil
		})
	}
	flowing("fan-out running for a second", time.Now().Add(time.Second), 10*time.Second)

	var kill1, restart1, fail time.Time
	if !freeze {
		// The server neither master uses dies, and comes back (new
		// ports, routed to the two others).
		kill1 = time.Now()
		other.kill()
		flowing("fan-out a second after the unused server died", time.Now().Add(time.Second), 10*time.Second)
		restart1 = time.Now()
		back := startNATSNode(t, other.name+"-again", n1.routeURL(), onB.routeURL())
		waitMesh(t, n1, onB, back)
		flowing("fan-out a second after the server came back", time.Now().Add(time.Second), 10*time.Second)
		// The server master A uses dies.
		fail = time.Now()
		n1.kill()
	} else {
		fail = time.Now()
		px.Freeze()
	}
	flowing("fan-out after A's server failed", fail, within+10*time.Second)
	var moves []string
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "A's nodes connected again", func() error {
		var err error
		moves, err = reconnects(ma, sta, fail)
		return err
	})
	// A second of traffic once delivery is back, then the last message
	// of each publisher must reach every member.
	flowing("fan-out a second later", time.Now().Add(time.Second), 10*time.Second)
	close(stopPub)
	var lastSeq [2]int
	for i, p := range pubs {
		<-p.done
		testkit.Eventually(t, 10*time.Second, testkit.Poll, p.name+"'s messages answered", func() error {
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.answers) < len(p.sentAt) {
				return fmt.Errorf("%d answers to %d messages", len(p.answers), len(p.sentAt))
			}
			return nil
		})
		lastSeq[i] = p.sent() - 1
		testkit.Eventually(t, 10*time.Second, testkit.Poll, p.name+"'s last message delivered", func() bool { return allGot(p, lastSeq[i]) })
	}
	// Presence has healed: both sides count every member and see the
	// users of the other, without ErrPartial.
	for _, addr := range []string{addrA, addrB} {
		cl := dialChat(t, "asker", addr)
		askUntil(t, cl, "count room", fmt.Sprintf("count %d", 2*perSide))
		askUntil(t, cl, "online rA0", "online true")
		askUntil(t, cl, "online rB0", "online true")
	}
	stopAll()
	for _, p := range pubs {
		if p.werr != nil {
			t.Fatalf("%s: %v", p.name, p.werr)
		}
	}

	// What happened, message by message. Times are relative to the death
	// of A's server, by the publishers' clocks (when they wrote).
	rel := func(tm time.Time) string { return tm.Sub(fail).Round(time.Millisecond).String() }
	if !freeze {
		t.Logf("unused server %s killed at %s, back at %s; A's server %s killed at 0 (%s)", other.name, rel(kill1), rel(restart1), n1.name, fail.Format("15:04:05.000"))
	} else {
		t.Logf("A's link to %s black-holed at 0 (%s)", n1.name, fail.Format("15:04:05.000"))
	}
	for _, m := range moves {
		t.Logf("A's %s", m)
	}
	var errs []string
	for i, p := range pubs {
		nerr := 0
		for seq, a := range p.answers {
			if a != "ok" {
				nerr++
				if nerr <= 5 {
					t.Logf("%s %d (sent at %s) answered %q", p.name, seq, rel(p.sentAt[seq]), a)
				}
			}
		}
		if nerr > 0 {
			t.Logf("%s: %d of %d answers were errors", p.name, nerr, len(p.answers))
		}
		lastLost := -1
		for _, r := range recvs {
			var lost []int
			for seq := 0; seq <= lastSeq[i]; seq++ {
				switch c := r.got[p.name][seq]; {
				case c == 0:
					lost = append(lost, seq)
				case c > 1:
					errs = append(errs, fmt.Sprintf("%s got %s %d %d times", r.name, p.name, seq, c))
				}
			}
			if len(lost) == 0 {
				continue
			}
			first, last := lost[0], lost[len(lost)-1]
			lastLost = max(lastLost, last)
			t.Logf("%s lost %d of %s's %d messages: %d..%d, sent at %s..%s", r.name, len(lost), p.name, lastSeq[i]+1,
				first, last, rel(p.sentAt[first]), rel(p.sentAt[last]))
			for _, seq := range lost {
				if s := p.sentAt[seq]; s.Before(fail.Add(-time.Second)) || s.After(fail.Add(within)) {
					errs = append(errs, fmt.Sprintf("%s lost %s %d, sent at %s: outside the failure", r.name, p.name, seq, rel(s)))
				}
			}
		}
		// The longest wait of a message sent around the failure.
		var slowest time.Duration
		slowSeq := -1
		for seq := 0; seq <= lastSeq[i]; seq++ {
			s := p.sentAt[seq]
			if s.Before(fail.Add(-time.Second)) || s.After(fail.Add(within)) {
				continue
			}
			for _, r := range recvs {
				if at, ok := r.at[p.name][seq]; ok && at.Sub(s) > slowest {
					slowest, slowSeq = at.Sub(s), seq
				}
			}
		}
		if slowSeq >= 0 {
			t.Logf("%s: slowest delivery around the failure: %d, sent at %s, took %s", p.name, slowSeq, rel(p.sentAt[slowSeq]), slowest.Round(time.Millisecond))
		}
		if lastLost >= 0 {
			t.Logf("%s: every message from %d on (sent at %s) reached every member", p.name, lastLost+1, rel(p.sentAt[lastLost+1]))
		} else {
			t.Logf("%s: every message of %d reached every member", p.name, lastSeq[i]+1)
		}
	}
	for _, r := range recvs {
		if len(r.reorders) > 0 {
			errs = append(errs, fmt.Sprintf("%s: out of order: %v", r.name, r.reorders))
		}
		if len(r.strange) > 0 {
			errs = append(errs, fmt.Sprintf("%s: unexpected lines %q", r.name, r.strange))
		}
	}
	for _, q := range []*presenceProbe{qA, qB} {
		t.Logf("%s: %d presence answers, %d ErrPartial", q.cl.name, q.asked, q.partial)
		for _, w := range q.wrong {
			errs = append(errs, fmt.Sprintf("%s: %s", q.cl.name, w))
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
	// No restart of goes: the same worker processes throughout.
	sta2, err := ma.status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(sta.Workers, sta2.Workers, func(a, b ipc.Worker) bool { return a.PID == b.PID }) {
		t.Errorf("A's workers changed: %+v, then %+v", sta.Workers, sta2.Workers)
	}
	ma.stopAndCheck(sta)
	mb.stopAndCheck(stb)
}
