package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
)

// TestNodeLeavesStalledServer: the server a Node uses stops reading and
// answering without closing anything (a hung process, a link that drops
// every packet) while the Node publishes more than the sockets between
// them hold. No Send* call blocks for longer than about the write bound
// (one Heartbeat), the Node gives the connection up and moves to a server
// it learned from the cluster, and delivery resumes both ways.
func TestNodeLeavesStalledServer(t *testing.T) {
	s1, _ := startServer(t, ServerOptions{Name: "m1", Cluster: &ClusterOptions{}})
	s2, url2 := startServer(t, ServerOptions{Name: "m2", Cluster: &ClusterOptions{Routes: []string{s1.RouteURL()}}})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route up", func() error {
		if s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
			return errors.New("no route")
		}
		return nil
	})
	bh := testkit.NewBlackhole(t, s1.URL()[len("nats://"):])
	viaBH := "nats://" + bh.Addr()
	const heartbeat = time.Second
	oa, ob := nodeOptions(t, viaBH, 0, 1), nodeOptions(t, url2, 1, 1)
	oa.Heartbeat, ob.Heartbeat = heartbeat, heartbeat
	a, b := startWorker(t, oa), startWorker(t, ob)
	waitPeers(t, a, b)
	ca, cb := dialClient(t, a), dialClient(t, b)
	ca.do("join room")
	cb.do("join room")
	waitInterest(t, s2, "goes.g.room")
	waitInterest(t, s1, "goes.g.room")
	// a publishes on s1, b listens on s2: s1 must have b's interest from
	// the route (a's own subscription satisfies waitInterest on s1; under
	// load "before" was published before the route told s1 and was lost).
	waitRouteInterest(t, s1, "goes.g.room")
	a.node.SendToGroup("room", []byte("before"), ca.id)
	cb.expect("before")

	bh.Freeze()
	frozen := time.Now()
	big := bytes.Repeat([]byte("x"), 256<<10)
	var slowest time.Duration
	var calls, failed int
	for !a.node.Connected() || a.node.nc.ConnectedUrl() == viaBH {
		if time.Since(frozen) > 30*time.Second {
			t.Fatalf("still on the stalled server after 30 s (%d calls, %d failed, slowest %v)", calls, failed, slowest)
		}
		start := time.Now()
		if err := a.node.SendToGroup("void", big); err != nil {
			failed++
		}
		calls++
		slowest = max(slowest, time.Since(start))
		if !a.node.Connected() {
			time.Sleep(time.Millisecond) // reconnecting: publishes fill nats.go's buffer, no socket
		}
	}
	moved := time.Since(frozen)
	t.Logf("moved to %s after %v: %d calls of %d KiB, %d failed, slowest %v", a.node.nc.ConnectedUrl(), moved.Round(time.Millisecond), calls, len(big)>>10, failed, slowest.Round(time.Millisecond))
	// Writes are bounded by one Heartbeat; a call may wait for the write
	// of another (nats.go's flusher) and then make its own.
	if slowest > 2*heartbeat+time.Second {
		t.Errorf("a Send call blocked %v, want at most about %v", slowest, 2*heartbeat)
	}
	if moved > 3*heartbeat+2*time.Second {
		t.Errorf("moved after %v, want about 1.5 heartbeats", moved)
	}
	if err := a.node.Flush(); err != nil {
		t.Fatal(err)
	}
	a.node.SendToGroup("room", []byte("after"), ca.id)
	cb.expect("after")
	b.node.SendToGroup("room", []byte("back"), cb.id)
	ca.expect("back")
	if got, err := b.node.GroupCount("room"); err != nil || got != 2 {
		t.Fatalf("GroupCount = %d, %v; want 2", got, err)
	}
	if st := a.node.Stats(); st.Peers != 1 {
		t.Fatalf("a's stats after the move: %+v", st)
	}
}
