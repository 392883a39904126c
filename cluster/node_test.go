package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/testkit"
)

func TestSendToConnectionAcrossNodes(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	ca, cb := dialClient(t, a), dialClient(t, b)

	for _, tc := range []struct {
		name string
		from *Node
		to   *client
	}{
		{name: "a-to-b", from: a.node, to: cb},
		{name: "b-to-a", from: b.node, to: ca},
		{name: "a-to-own", from: a.node, to: ca},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "hello " + tc.name
			if err := tc.from.SendToConnection(tc.to.id, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			tc.to.with(t).expect(msg) // the text protocol appended the newline
		})
	}

	t.Run("order", func(t *testing.T) {
		for i := range 200 {
			if err := a.node.SendToConnection(cb.id, fmt.Appendf(nil, "m%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 200 {
			cb.with(t).expect(fmt.Sprintf("m%d", i))
		}
	})

	t.Run("close", func(t *testing.T) {
		cc := dialClient(t, b)
		if on, err := a.node.ConnectionOnline(cc.id); err != nil || !on {
			t.Fatalf("ConnectionOnline = %v, %v; want true", on, err)
		}
		a.node.SendToConnection(cc.id, []byte("bye"))
		if err := a.node.CloseConnection(cc.id); err != nil {
			t.Fatal(err)
		}
		cc.expect("bye") // what was queued is written before the close
		cc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := cc.r.ReadString('\n'); err == nil {
			t.Fatal("connection still open")
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "connection offline", func() error {
			if on, err := a.node.ConnectionOnline(cc.id); err != nil || on {
				return fmt.Errorf("ConnectionOnline = %v, %v", on, err)
			}
			return nil
		})
	})

	t.Run("gone-id", func(t *testing.T) {
		before := b.node.Stats().NotHere
		gone := cb.id + 1000 // same route, never handed out
		if err := a.node.SendToConnection(gone, []byte("lost")); err != nil {
			t.Fatalf("send to a gone id: %v (at most once: nil)", err)
		}
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "NotHere counted", func() error {
			if got := b.node.Stats().NotHere; got != before+1 {
				return fmt.Errorf("NotHere = %d, want %d", got, before+1)
			}
			return nil
		})
		if on, err := a.node.ConnectionOnline(gone); err != nil || on {
			t.Fatalf("ConnectionOnline(gone) = %v, %v", on, err)
		}
		// A route nobody serves: NATS tells at once.
		if on, err := a.node.ConnectionOnline(7<<48 | 9<<32 | 1); err != nil || on {
			t.Fatalf("ConnectionOnline(no route) = %v, %v", on, err)
		}
		cb.with(t).nothingBefore(a.node)
	})
}

func TestSendToUserOnTwoNodes(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	c := startWorker(t, nodeOptions(t, url, 2, 1)) // holds nobody
	alice1, alice2, bob := dialClient(t, a), dialClient(t, b), dialClient(t, b)
	alice1.do("user alice")
	alice2.do("user alice")
	bob.do("user bob")
	// A user id that is not a plain subject token.
	odd := dialClient(t, a)
	odd.do("user Zoë.*.>")

	if err := c.node.SendToUser("alice", []byte("for alice")); err != nil {
		t.Fatal(err)
	}
	alice1.expect("for alice")
	alice2.expect("for alice")
	bob.nothingBefore(c.node)
	if err := c.node.SendToUser("Zoë.*.>", []byte("odd")); err != nil {
		t.Fatal(err)
	}
	odd.expect("odd")
	alice1.nothingBefore(c.node)

	for _, tc := range []struct {
		name string
		from *Node
		uid  string
		want bool
	}{
		{name: "remote-on-two", from: c.node, uid: "alice", want: true},
		{name: "local", from: b.node, uid: "bob", want: true},
		{name: "remote", from: a.node, uid: "bob", want: true},
		{name: "nobody", from: c.node, uid: "carol", want: false},
		{name: "odd", from: b.node, uid: "Zoë.*.>", want: true},
	} {
		t.Run("online/"+tc.name, func(t *testing.T) {
			got, err := tc.from.UserOnline(tc.uid)
			if err != nil || got != tc.want {
				t.Fatalf("UserOnline(%q) = %v, %v; want %v", tc.uid, got, err, tc.want)
			}
		})
	}

	// Rebinding moves the connection to the other user.
	alice2.do("user bob")
	c.node.SendToUser("bob", []byte("for bob"))
	bob.expect("for bob")
	alice2.expect("for bob")
	alice1.nothingBefore(c.node)

	// Alice leaves: her last connection closes.
	alice1.c.Close()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "alice offline", func() error {
		if on, err := c.node.UserOnline("alice"); err != nil || on {
			return fmt.Errorf("UserOnline = %v, %v", on, err)
		}
		return nil
	})
	bob.do("unuser")
	alice2.do("unuser")
	if on, err := a.node.UserOnline("bob"); err != nil || on {
		t.Fatalf("UserOnline(bob) after unbind = %v, %v", on, err)
	}
}

func TestSendToGroupWithExclusion(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	c1, c2, c3, out := dialClient(t, a), dialClient(t, a), dialClient(t, b), dialClient(t, b)
	for _, c := range []*client{c1, c2, c3} {
		c.do("join room")
	}
	out.do("join hall")
	c1.do("join hall") // in two groups

	if err := b.node.SendToGroup("room", []byte("to room"), c2.id); err != nil {
		t.Fatal(err)
	}
	c1.expect("to room")
	c3.expect("to room")
	c2.nothingBefore(b.node)
	out.nothingBefore(b.node)

	if err := a.node.SendToGroup("hall", []byte("to hall")); err != nil {
		t.Fatal(err)
	}
	out.expect("to hall")
	c1.expect("to hall")

	c3.do("leave room")
	c3.do("leave room") // harmless
	a.node.SendToGroup("room", []byte("again"))
	c1.expect("again")
	c2.expect("again")
	c3.nothingBefore(a.node)

	// A group nobody is in: sent into the void, no error.
	if err := a.node.SendToGroup("empty", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestBroadcast(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	cs := []*client{dialClient(t, a), dialClient(t, a), dialClient(t, b), dialClient(t, b)}

	if err := a.node.Broadcast([]byte("all")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		c.expect("all")
	}
	if err := b.node.Broadcast([]byte("most"), cs[0].id, cs[3].id); err != nil {
		t.Fatal(err)
	}
	cs[1].expect("most")
	cs[2].expect("most")
	cs[0].nothingBefore(b.node)
	cs[3].nothingBefore(b.node)
}

func TestPresenceCounts(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	ws := []*worker{
		startWorker(t, nodeOptions(t, url, 0, 1)),
		startWorker(t, nodeOptions(t, url, 1, 1)),
		startWorker(t, nodeOptions(t, url, 2, 1)),
	}
	waitPeers(t, ws...)
	var cs []*client
	for i, w := range ws {
		for j := 0; j <= i; j++ { // 1, 2, 3 connections
			c := dialClient(t, w)
			if j%2 == 0 {
				c.do("join even")
			}
			cs = append(cs, c)
		}
	}
	// even: worker 0: 1, worker 1: 1, worker 2: 2.
	count := func(n *Node, group string) (int, error) {
		if group == "" {
			return n.ConnectionCount()
		}
		return n.GroupCount(group)
	}
	check := func(t *testing.T, group string, want int) {
		t.Helper()
		for _, w := range ws {
			if got, err := count(w.node, group); err != nil || got != want {
				t.Fatalf("%s: count(%q) = %d, %v; want %d", w.node.Name(), group, got, err, want)
			}
		}
	}
	t.Run("all", func(t *testing.T) { check(t, "", 6) })
	t.Run("group", func(t *testing.T) { check(t, "even", 4) })
	t.Run("no-group", func(t *testing.T) { check(t, "odd", 0) })

	t.Run("disconnect", func(t *testing.T) {
		cs[5].c.Close() // worker 2, in "even"
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "count drops", func() error {
			if got, err := ws[0].node.GroupCount("even"); err != nil || got != 3 {
				return fmt.Errorf("GroupCount = %d, %v", got, err)
			}
			return nil
		})
		check(t, "", 5)
	})

	t.Run("node-leaves", func(t *testing.T) {
		ws[2].stop(t)
		// The bye is seen at once, not after missed heartbeats.
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "peer gone", func() error {
			if p := ws[0].node.Peers(); len(p) != 1 {
				return fmt.Errorf("peers %v", p)
			}
			return nil
		})
		check := func(n *Node) {
			if got, err := n.ConnectionCount(); err != nil || got != 3 {
				t.Fatalf("ConnectionCount = %d, %v; want 3", got, err)
			}
		}
		check(ws[0].node)
		check(ws[1].node)
	})
}

// TestPresenceSilentPeer: a peer that announced itself and then stops
// answering (a hung or killed worker) makes counts partial until it has
// missed three heartbeats.
func TestPresenceSilentPeer(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	o := nodeOptions(t, url, 0, 1)
	o.RequestTimeout = 200 * time.Millisecond
	o.Heartbeat = 100 * time.Millisecond
	w := startWorker(t, o)
	dialClient(t, w)

	// The silent peer is a plain NATS client speaking the announcement.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hello := appendMember([]byte{opHello}, 5<<16|1, 1, "silent/5")
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "silent peer known", func() error {
		// Announce until seen: a slow test could miss a single one that
		// is pruned three heartbeats later.
		if err := nc.Publish("goes.all", hello); err != nil {
			return err
		}
		if p := w.node.Peers(); len(p) != 1 || p[0] != "silent/5" {
			return fmt.Errorf("peers %v", p)
		}
		return nil
	})
	got, err := w.node.ConnectionCount()
	// The peer may already be pruned if this goroutine was slow.
	if err != nil && (!errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "silent/5")) {
		t.Fatalf("ConnectionCount error %v, want ErrPartial naming silent/5", err)
	}
	if got != 1 {
		t.Fatalf("ConnectionCount = %d, want 1 (the answering node's)", got)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "silent peer pruned", func() error {
		if p := w.node.Peers(); len(p) != 0 {
			return fmt.Errorf("peers %v", p)
		}
		return nil
	})
	if got, err := w.node.ConnectionCount(); err != nil || got != 1 {
		t.Fatalf("ConnectionCount = %d, %v; want 1", got, err)
	}
}

// TestBeatPeriod: a Node announces itself every Heartbeat up to 16 Nodes,
// and less often in proportion beyond, so that the announcements each
// Node hears stay about 16 per Heartbeat.
func TestBeatPeriod(t *testing.T) {
	const h = 2 * time.Second
	for _, c := range []struct {
		known uint32
		want  time.Duration
	}{{0, h}, {1, h}, {16, h}, {17, 2 * h}, {32, 2 * h}, {53, 4 * h}, {1000, 63 * h}} {
		if got := beatPeriod(h, c.known); got != c.want {
			t.Errorf("beatPeriod(%v, %d) = %v, want %v", h, c.known, got, c.want)
		}
		if c.known > 0 {
			if heard := time.Duration(c.known-1) * h / beatPeriod(h, c.known); heard > beatFanIn {
				t.Errorf("%d Nodes: each hears %d announcements per Heartbeat", c.known, heard)
			}
		}
	}
}

// TestSilentPeerOfLargeCluster: a peer whose announcement says it knows of
// many Nodes (so it announces itself less often, beatPeriod) is forgotten
// after three of its own periods, not after three Heartbeats.
func TestSilentPeerOfLargeCluster(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	const h = 100 * time.Millisecond
	o := nodeOptions(t, url, 0, 1)
	o.Heartbeat = h
	w := startWorker(t, o)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const known = 10 * beatFanIn // a period of 10 Heartbeats: forgotten after 30
	hello := appendMember([]byte{opHello}, 5<<16|1, known, "large/5")
	if err := nc.Publish("goes.all", hello); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "peer known", func() error {
		if p := w.node.Peers(); len(p) != 1 || p[0] != "large/5" {
			return fmt.Errorf("peers %v", p)
		}
		return nil
	})
	seen := time.Now()
	time.Sleep(6 * h) // twice the three Heartbeats after which a Heartbeat-period peer is forgotten
	if p := w.node.Peers(); len(p) != 1 && time.Since(seen) < 30*h {
		t.Fatalf("peer forgotten within %v, before three of its periods (%v)", time.Since(seen), 3*beatPeriod(h, known))
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "silent peer forgotten", func() error {
		if p := w.node.Peers(); len(p) != 0 {
			return fmt.Errorf("peers %v", p)
		}
		return nil
	})
}

func TestNodeErrors(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	w := startWorker(t, nodeOptions(t, url, 3, 7))
	c := dialClient(t, w)

	t.Run("route-in-use", func(t *testing.T) {
		_, err := NewNode(nodeOptions(t, url, 3, 7))
		if !errors.Is(err, ErrRouteInUse) {
			t.Fatalf("second node on one route: %v, want ErrRouteInUse", err)
		}
	})
	t.Run("bad-prefix", func(t *testing.T) {
		for _, p := range []string{"a.*", "a..b", "a b", ".a", "a>"} {
			o := nodeOptions(t, url, 4, 1)
			o.Prefix = p
			if _, err := NewNode(o); !errors.Is(err, ErrBadPrefix) {
				t.Errorf("prefix %q: %v, want ErrBadPrefix", p, err)
			}
		}
	})

	other := connID(4<<48 | 1<<32 | 1) // another route
	local := connID(3<<48 | 7<<32 | 999)
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{name: "add-foreign", do: func() error { return w.node.Add(other) }, want: ErrForeignConnection},
		{name: "bind-unknown", do: func() error { return w.node.BindUser(local, "u") }, want: ErrUnknownConnection},
		{name: "join-unknown", do: func() error { return w.node.JoinGroup(local, "g") }, want: ErrUnknownConnection},
		{name: "leave-unknown", do: func() error { return w.node.LeaveGroup(local, "g") }, want: ErrUnknownConnection},
		{name: "unbind-unknown", do: func() error { return w.node.UnbindUser(local) }, want: ErrUnknownConnection},
		{name: "empty-user", do: func() error { return w.node.SendToUser("", nil) }, want: ErrEmptyName},
		{name: "long-group", do: func() error { return w.node.SendToGroup(long, nil) }, want: ErrNameTooLong},
		{name: "long-online", do: func() error { _, err := w.node.UserOnline(long); return err }, want: ErrNameTooLong},
		{name: "empty-count", do: func() error { _, err := w.node.GroupCount(""); return err }, want: ErrEmptyName},
		{name: "too-big", do: func() error { return w.node.SendToConnection(c.id, make([]byte, 2<<20)) }, want: nats.ErrMaxPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	c.nothingBefore(w.node)
	w.node.Remove(local) // unknown: harmless

	t.Run("closed", func(t *testing.T) {
		w.stop(t)
		if err := w.node.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		for name, err := range map[string]error{
			"send":  w.node.SendToConnection(c.id, nil),
			"user":  w.node.SendToUser("u", nil),
			"group": w.node.SendToGroup("g", nil),
			"all":   w.node.Broadcast(nil),
			"close": w.node.CloseConnection(c.id),
			"add":   w.node.Add(connID(c.id)),
			"flush": w.node.Flush(),
		} {
			if !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
		if _, err := w.node.ConnectionCount(); !errors.Is(err, ErrClosed) {
			t.Errorf("count after Close: %v", err)
		}
	})
}

// connID is a Conn that only has an id, for the error paths that never
// deliver.
type connID uint64

func (c connID) ID() uint64                 { return uint64(c) }
func (connID) SendBytes([]byte, bool) error { return errors.New("not a connection") }
func (connID) Close() error                 { return nil }

// TestServerRestart: the NATS server goes away and comes back on the same
// port; the Nodes reconnect by themselves and their subscriptions (routes,
// users, groups) are restored.
func TestServerRestart(t *testing.T) {
	s, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	ca, cb := dialClient(t, a), dialClient(t, b)
	cb.do("user bob")
	cb.do("join room")
	waitPeers(t, a, b)

	pu, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(pu.Port())
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "nodes disconnected", func() error {
		if a.node.Connected() || b.node.Connected() {
			return errors.New("still connected")
		}
		return nil
	})
	s2, url2 := startServer(t, ServerOptions{Port: port})
	if url2 != url {
		t.Fatalf("restarted at %s, want %s", url2, url)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "nodes reconnected", func() error {
		if !a.node.Connected() || !b.node.Connected() {
			return errors.New("not yet")
		}
		return nil
	})
	for _, n := range []*Node{a.node, b.node} {
		if err := n.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	waitInterest(t, s2, "goes.g.room")
	a.node.SendToConnection(cb.id, []byte("direct"))
	a.node.SendToUser("bob", []byte("user"))
	a.node.SendToGroup("room", []byte("group"))
	cb.expect("direct")
	cb.expect("user")
	cb.expect("group")
	b.node.SendToConnection(ca.id, []byte("back"))
	ca.expect("back")
	if got, err := a.node.ConnectionCount(); err != nil || got != 2 {
		t.Fatalf("ConnectionCount = %d, %v; want 2", got, err)
	}
}

// TestWorkerRestart: a worker dies and is replaced by a process with a new
// route; ids of the old one are dead, the new one is reachable, the peers
// notice.
func TestWorkerRestart(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	a := startWorker(t, nodeOptions(t, url, 0, 1))
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	waitPeers(t, a, b)
	old := dialClient(t, b)
	old.do("user bob")
	b.stop(t)

	b2 := startWorker(t, nodeOptions(t, url, 1, 2))
	waitPeers(t, a, b2)
	if p := a.node.Peers(); p[0] != "test/1.2" {
		t.Fatalf("peers %v", p)
	}
	if on, err := a.node.ConnectionOnline(old.id); err != nil || on {
		t.Fatalf("old id online = %v, %v", on, err)
	}
	if on, err := a.node.UserOnline("bob"); err != nil || on {
		t.Fatalf("bob online = %v, %v", on, err)
	}
	if err := a.node.SendToConnection(old.id, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	nu := dialClient(t, b2)
	if nu.id>>32 == old.id>>32 {
		t.Fatalf("new id %x has the old route", nu.id)
	}
	nu.do("user bob")
	a.node.SendToUser("bob", []byte("welcome back"))
	nu.expect("welcome back")
	if got, err := a.node.ConnectionCount(); err != nil || got != 1 {
		t.Fatalf("ConnectionCount = %d, %v; want 1", got, err)
	}
}

// TestAcrossMachines: two embedded servers clustered by a route on
// loopback stand for two machines; every kind of message crosses the
// route.
func TestAcrossMachines(t *testing.T) {
	s1, url1 := startServer(t, ServerOptions{Name: "m1", Cluster: &ClusterOptions{}})
	s2, url2 := startServer(t, ServerOptions{Name: "m2", Cluster: &ClusterOptions{Routes: []string{s1.RouteURL()}}})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route up", func() error {
		if s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
			return errors.New("no route")
		}
		return nil
	})
	heartbeat := func(o NodeOptions) NodeOptions { o.Heartbeat = 200 * time.Millisecond; return o }
	// Worker 0 on both machines: their routes must differ all the same.
	a := startWorker(t, heartbeat(nodeOptions(t, url1, 0, 1)))
	b := startWorker(t, heartbeat(nodeOptions(t, url2, 0, 2)))
	waitPeers(t, a, b)
	ca, cb := dialClient(t, a), dialClient(t, b)
	ca.do("user ann")
	cb.do("user ann")
	ca.do("join room")
	cb.do("join room")
	waitInterest(t, s1, "goes.c.2")
	waitInterest(t, s2, "goes.c.1")
	// Both machines have ann and room locally: what the publishes below
	// need is each one's interest known across the route.
	waitRouteInterest(t, s2, "goes.u.ann")
	waitRouteInterest(t, s1, "goes.u.ann")
	waitRouteInterest(t, s1, "goes.g.room")

	a.node.SendToConnection(cb.id, []byte("m1 to m2"))
	cb.expect("m1 to m2")
	b.node.SendToConnection(ca.id, []byte("m2 to m1"))
	ca.expect("m2 to m1")

	b.node.SendToUser("ann", []byte("ann"))
	ca.expect("ann")
	cb.expect("ann")

	a.node.SendToGroup("room", []byte("room"), ca.id)
	cb.expect("room")
	ca.nothingBefore(a.node)

	b.node.Broadcast([]byte("everyone"))
	ca.expect("everyone")
	cb.expect("everyone")

	if got, err := a.node.ConnectionCount(); err != nil || got != 2 {
		t.Fatalf("ConnectionCount = %d, %v; want 2", got, err)
	}
	if got, err := b.node.GroupCount("room"); err != nil || got != 2 {
		t.Fatalf("GroupCount = %d, %v; want 2", got, err)
	}
	if on, err := a.node.ConnectionOnline(cb.id); err != nil || !on {
		t.Fatalf("ConnectionOnline across = %v, %v", on, err)
	}

	// Machine 2's server goes away: its Node learned machine 1's server
	// from the cluster (NATS gossips the client URLs) and moves there.
	s2.Shutdown()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "failover", func() error {
		if !b.node.Connected() || b.node.nc.ConnectedUrl() != url1 {
			return fmt.Errorf("connected %v to %q", b.node.Connected(), b.node.nc.ConnectedUrl())
		}
		return nil
	})
	if err := b.node.Flush(); err != nil {
		t.Fatal(err)
	}
	a.node.SendToUser("ann", []byte("after failover"))
	ca.expect("after failover")
	cb.expect("after failover")
	b.node.SendToConnection(ca.id, []byte("still here"))
	ca.expect("still here")
}

// TestMalformedMessages: messages this package did not write (another
// application on the prefix, garbage) are counted and dropped; the Node
// keeps delivering.
func TestMalformedMessages(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	w := startWorker(t, nodeOptions(t, url, 0, 1))
	c := dialClient(t, w)
	c.do("join g")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	bad := []struct{ subject, data string }{
		{"goes.c.1", ""},
		{"goes.c.1", "\x01short"},
		{"goes.c.1", "\x63whatever"},
		{"goes.c.1", "\x06xy"}, // beat too short
		{"goes.all", "\x01\xff\xff\xff\xff\x0f"},
		{"goes.all", "\x05ab"},
		{"goes.all", "\x08ab"},
		{"goes.all", "\x63"},
		{"goes.g.g", "\x01\x05"},
		{"goes.g.g", "\x02"},
	}
	for _, m := range bad {
		if err := nc.Publish(m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "malformed counted", func() error {
		if got := w.node.Stats().Malformed; got != uint64(len(bad)) {
			return fmt.Errorf("Malformed = %d, want %d", got, len(bad))
		}
		return nil
	})
	w.node.SendToGroup("g", []byte("fine"))
	c.expect("fine")
	if p := w.node.Peers(); len(p) != 0 {
		t.Fatalf("garbage made peers %v", p)
	}
}

// TestNodeStartsBeforeServer: a worker may start while NATS is not up yet
// (an external cluster restarting): NewNode returns, the Node connects
// when the server comes and introduces itself then.
func TestNodeStartsBeforeServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	a := startWorker(t, nodeOptions(t, url, 0, 1))
	if a.node.Connected() {
		t.Fatal("connected to nothing")
	}
	ca := dialClient(t, a) // the worker serves meanwhile
	startServer(t, ServerOptions{Port: port})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "connected", func() error {
		if !a.node.Connected() {
			return errors.New("not yet")
		}
		return nil
	})
	b := startWorker(t, nodeOptions(t, url, 1, 1))
	waitPeers(t, a, b)
	if err := a.node.Flush(); err != nil {
		t.Fatal(err)
	}
	b.node.SendToConnection(ca.id, []byte("late but here"))
	ca.expect("late but here")
}

// TestConcurrentJoins: Nodes that join together while others run (the
// workers of a new generation during a reload) learn each other without
// waiting for a Node that is itself still joining, and so without running
// into RequestTimeout.
func TestConcurrentJoins(t *testing.T) {
	_, url := startServer(t, ServerOptions{})
	var logs syncBuffer
	opts := func(route uint64) NodeOptions {
		o := nodeOptions(t, url, 0, route)
		o.RequestTimeout = time.Minute // a join that waits for it fails the test's bound
		o.Logger = zerolog.New(&logs)
		return o
	}
	var nodes []*Node
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	for _, r := range []uint64{1, 2} {
		n, err := NewNode(opts(r))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	route := uint64(2)
	for round := 0; round < 5; round++ {
		const joining = 3
		errs := make(chan error, joining)
		started := make(chan *Node, joining)
		for i := 0; i < joining; i++ {
			route++
			o := opts(route)
			go func() {
				n, err := NewNode(o)
				errs <- err
				started <- n
			}()
		}
		deadline := time.After(20 * time.Second)
		for i := 0; i < joining; i++ {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, <-started)
			case <-deadline:
				t.Fatalf("round %d: joins still waiting after 20 s:\n%s", round, logs.String())
			}
		}
	}
	if strings.Contains(logs.String(), "join incomplete") {
		t.Fatalf("a join waited for its timeout:\n%s", logs.String())
	}
	for _, n := range nodes {
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "peers of "+n.Name(), func() error {
			if got := len(n.Peers()); got != len(nodes)-1 {
				return fmt.Errorf("%d peers", got)
			}
			return nil
		})
	}
}

// TestJoinHearsPeersTheAnswersCount: a Node that joins waits until it has
// heard of as many Nodes as an answer counts, and hears of each of them even
// when one never gets its request. A NATS server matches a message's
// subscribers and then hands it to them one by one, so an answering Node
// may already know a Node whose subscription to the all subject reached the
// server only after the request had been matched (TestConcurrentJoins met
// it under load). A bare NATS client stands for that Node: the answering
// Node knows it, the requests never reach it, and once the joiner listens
// on the all subject it speaks there as that Node does after subscribing:
// it announces itself, or it leaves. The join must end at once, not at its
// timeout.
func TestJoinHearsPeersTheAnswersCount(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    byte
		peers []string // the joiner's when NewNode returns
	}{
		{name: "announces", op: opHello, peers: []string{"late/9", "test/0.1"}},
		{name: "leaves", op: opBye, peers: []string{"test/0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := startServer(t, ServerOptions{})
			old, err := NewNode(nodeOptions(t, url, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { old.Close() })
			late, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(late.Close)
			if err := late.Publish("goes.all", appendMember([]byte{opHello}, 9, 1, "late/9")); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "old node knows late/9", func() error {
				if p := old.Peers(); len(p) != 1 || p[0] != "late/9" {
					return fmt.Errorf("peers %v", p)
				}
				return nil
			})

			// A count request on the all subject tells when the joiner
			// listens there: it answers.
			var listening atomic.Bool
			inbox := late.NewInbox()
			if _, err := late.Subscribe(inbox, func(m *nats.Msg) {
				if r, _, err := parseCountReply(m.Data); err == nil && r == 2 {
					listening.Store(true)
				}
			}); err != nil {
				t.Fatal(err)
			}
			count := binary.BigEndian.AppendUint32([]byte{opCount}, 77)

			var logs syncBuffer
			o := nodeOptions(t, url, 0, 2)
			o.RequestTimeout = time.Minute // a join that waits for it fails the test's bound
			o.Logger = zerolog.New(&logs)
			type result struct {
				n   *Node
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := NewNode(o)
				done <- result{n, err}
			}()
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "joiner listening", func() error {
				if listening.Load() {
					return nil
				}
				if err := late.PublishRequest("goes.all", inbox, count); err != nil {
					t.Fatal(err)
				}
				return errors.New("no answer from the joiner yet")
			})
			select {
			case res := <-done:
				t.Fatalf("NewNode returned before late/9 spoke: %v, %v\n%s", res.n.Peers(), res.err, logs.String())
			default:
			}
			// The old node answered the joiner counting itself and late/9;
			// late/9 got no request. It speaks now, as that Node would once
			// subscribed.
			if err := late.Publish("goes.all", appendMember([]byte{tc.op}, 9, 1, "late/9")); err != nil {
				t.Fatal(err)
			}
			var res result
			select {
			case res = <-done:
			case <-time.After(testkit.Wait):
				t.Fatalf("join still waiting after %s:\n%s", testkit.Wait, logs.String())
			}
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.n.Close()
			if strings.Contains(logs.String(), "join incomplete") {
				t.Fatalf("the join waited for its timeout:\n%s", logs.String())
			}
			if p := res.n.Peers(); !slices.Equal(p, tc.peers) {
				t.Fatalf("joined knowing %v, want %v", p, tc.peers)
			}
		})
	}
}
