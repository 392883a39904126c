package connections_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/text"
)

// group is a fan-out test's members: the connections that sent "join"
// (each answered "ok"), in the order they joined.
type group struct {
	mu sync.Mutex
	cs []connections.Connection
}

// join makes c a member and answers it "ok".
func (g *group) join(c connections.Connection) {
	g.mu.Lock()
	g.cs = append(g.cs, c)
	g.mu.Unlock()
	c.Send("ok", false)
}

// members returns the members so far.
func (g *group) members() []connections.Connection {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]connections.Connection(nil), g.cs...)
}

// joinGroup sends "join" on c, member i, waits for its "ok" and returns
// c's reader.
func joinGroup(t *testing.T, i int, c net.Conn) *bufio.Reader {
	t.Helper()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "join\n")
	if l, err := r.ReadString('\n'); err != nil || l != "ok\n" {
		t.Fatalf("member %d joined with %q, %v", i, l, err)
	}
	return r
}

// TestFanoutDeliversOnceToEach publishes messages with a Fanout to many
// text connections while other goroutines Send to the same connections:
// every member reads every published line exactly once, in publishing
// order, and every other line whole (a shared frame is never changed by a
// send queued behind it). A member that closed is refused with ErrClosed
// and not counted; the publisher's own queue, held by its running
// callback, gets the frame copied between its own sends. Each member reads
// up to an end line sent to it last, so a line delivered twice is seen.
func TestFanoutDeliversOnceToEach(t *testing.T) {
	for _, noRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoIOUring=%v", noRing), func(t *testing.T) { testFanoutOnce(t, noRing) })
	}
}

func testFanoutOnce(t *testing.T, noRing bool) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const members, msgs, chatter = 60, 50, 20
		var (
			g       group
			fanout  connections.Fanout
			fanMu   sync.Mutex // a Fanout is not safe for concurrent use
			results = make(chan string, 4)
		)
		publish := func(line string) (int, []error) {
			cs := g.members()
			fanMu.Lock()
			defer fanMu.Unlock()
			fanout.Begin([]byte(line), false)
			var errs []error
			for _, c := range cs {
				if err := fanout.Add(c); err != nil {
					errs = append(errs, err)
				}
			}
			return fanout.End(), errs
		}
		srv, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), NoIOUring: noRing,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
				switch msg := string(data); {
				case msg == "join":
					g.join(c)
				case msg == "inside":
					// In the callback: the frame lands behind "before",
					// and "after" behind it.
					c.Send("before", false)
					sent, errs := publish("m inside")
					c.Send("after", false)
					results <- fmt.Sprint(sent, len(errs))
				}
			}},
		})

		conns := make([]net.Conn, members)
		readers := make([]*bufio.Reader, members)
		for i := range conns {
			conns[i] = dial(t, "tcp", addr)
			conns[i].SetDeadline(time.Now().Add(30 * time.Second))
			readers[i] = joinGroup(t, i, conns[i])
		}

		// Chatter: other goroutines send to every member meanwhile.
		var wg sync.WaitGroup
		cs := g.members()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < chatter; k++ {
					for _, c := range cs {
						c.Send("chatter-line-that-is-long-enough", false)
					}
				}
			}()
		}
		for m := 0; m < msgs; m++ {
			if sent, errs := publish(fmt.Sprintf("m %d", m)); sent != members || len(errs) != 0 {
				t.Fatalf("message %d: sent to %d of %d, errors %v", m, sent, members, errs)
			}
		}
		wg.Wait()
		// From a member's own callback.
		fmt.Fprintf(conns[0], "inside\n")
		if r := <-results; r != fmt.Sprint(members, 0) {
			t.Fatalf("publish inside a callback: sent, errors = %s; want %d 0", r, members)
		}

		// Last, an end line on every member, queued behind all the rest:
		// each reads up to it, so a line read twice does not go unseen.
		for _, c := range cs {
			if err := c.Send("end", false); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range readers {
			next, chat := 0, 0
			sawInside, sawBefore, sawAfter := false, false, false
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("member %d: after %d messages, %d chatter: %v", i, next, chat, err)
				}
				l = strings.TrimSuffix(l, "\n")
				if l == "end" {
					break
				}
				switch {
				case l == "chatter-line-that-is-long-enough" && chat < 2*chatter:
					chat++
				case l == "m inside" && !sawInside:
					if i == 0 && (!sawBefore || sawAfter) {
						t.Fatalf("member 0: the published line came out of its callback's order")
					}
					sawInside = true
				case l == "before" && i == 0 && !sawBefore:
					sawBefore = true
				case l == "after" && i == 0 && !sawAfter:
					if !sawInside {
						t.Fatalf("member 0: after before the published line")
					}
					sawAfter = true
				case l == fmt.Sprintf("m %d", next):
					next++
				default:
					t.Fatalf("member %d: read %q (after %d messages, %d chatter, inside %v, before %v, after %v): a line out of order or twice",
						i, l, next, chat, sawInside, sawBefore, sawAfter)
				}
			}
			if next != msgs || !sawInside || chat != 2*chatter || i == 0 && !(sawBefore && sawAfter) {
				t.Fatalf("member %d: end after %d messages of %d, %d chatter of %d, inside %v, before %v, after %v",
					i, next, msgs, chat, 2*chatter, sawInside, sawBefore, sawAfter)
			}
		}

		// The event loops sent the fan-out in io_uring batches, unless
		// told not to (io_uring is enabled on the machines this runs on).
		if ring := srv.Stats().IOUringSends; (ring > 0) != (engine.Name == connections.EngineEpoll && !noRing) {
			t.Errorf("Stats().IOUringSends = %d with engine %s, NoIOUring %v", ring, engine, noRing)
		}

		// A member that has gone is refused and not counted.
		conns[members-1].Close()
		testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, "the closed member is refused", func() bool {
			sent, errs := publish("m gone")
			return sent == members-1 && len(errs) == 1 && errors.Is(errs[0], connections.ErrClosed)
		})
	})
}

// countingText is the text protocol counting its Encode calls.
type countingText struct {
	protocols.Protocol
	encodes atomic.Int64
}

func (p *countingText) Encode(c protocols.Conn, dst, msg []byte) ([]byte, error) {
	p.encodes.Add(1)
	return p.Protocol.Encode(c, dst, msg)
}

func (p *countingText) EncodeKey(c protocols.Conn, msg []byte) (uint32, bool) {
	return p.Protocol.(protocols.SharedEncoder).EncodeKey(c, msg)
}

// TestFanoutEncodesOnce: a Fanout to the stream connections of a server
// whose protocol is a protocols.SharedEncoder encodes each message once,
// not once per member (the member's engine connection takes the shared
// frame: Fanout finds its core.Conn), and every member reads it.
func TestFanoutEncodesOnce(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const members = 20
		proto := &countingText{Protocol: text.New()}
		var g group
		_, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool, Protocol: proto,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) { g.join(c) }},
		})
		readers := make([]*bufio.Reader, members)
		for i := range readers {
			c := dial(t, "tcp", addr)
			c.SetDeadline(time.Now().Add(30 * time.Second))
			readers[i] = joinGroup(t, i, c)
		}
		cs := g.members()
		before := proto.encodes.Load()
		var f connections.Fanout
		f.Begin([]byte("news"), false)
		for _, c := range cs {
			if err := f.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.End(); n != members {
			t.Fatalf("sent to %d of %d", n, members)
		}
		if n := proto.encodes.Load() - before; n != 1 {
			t.Errorf("the message was encoded %d times for %d members, want once", n, members)
		}
		for i, r := range readers {
			if l, err := r.ReadString('\n'); err != nil || l != "news\n" {
				t.Fatalf("member %d read %q, %v", i, l, err)
			}
		}
	})
}
