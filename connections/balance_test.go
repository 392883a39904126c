//go:build unix

package connections_test

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
)

// shareServe serves one listening socket with a server of its own (a
// duplicate of ln's descriptor, as a worker inherits it) in slot of sh.
func shareServe(t *testing.T, ln *net.TCPListener, sh *connections.AcceptShare, slot int, engine testkit.Engine) *connections.Server {
	t.Helper()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	dup, err := net.FileListener(f) // non-blocking again, for every holder
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := connections.NewServer(connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
		Logger: testkit.Logger(t), AcceptShare: sh, AcceptSlot: slot})
	done := make(chan error, 1)
	go func() { done <- s.Serve(dup) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s
}

// dialN opens n connections to addr and waits until the servers hold
// want connections together.
func dialN(t *testing.T, addr string, n int, want int64, srvs ...*connections.Server) {
	t.Helper()
	for range n {
		dial(t, "tcp", addr)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "connections accepted", func() error {
		var sum int64
		for _, s := range srvs {
			sum += s.Stats().Connections
		}
		if sum != want {
			return fmt.Errorf("%d accepted, want %d", sum, want)
		}
		return nil
	})
}

// TestAcceptShare: server a alone takes 200 connections; then server b
// serves the same socket in the same share, and of 200 more connections b
// takes at least 160, where without the share the two would take turns
// (a is above its share as soon as b starts with none: it stops accepting
// until b has caught up). Then b drains, which leaves a alone in the share,
// and a takes 100 more although above the old mean.
func TestAcceptShare(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		sh, err := connections.NewAcceptShare(4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sh.Close() })
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := l.(*net.TCPListener)
		t.Cleanup(func() { ln.Close() })
		addr := ln.Addr().String()

		a := shareServe(t, ln, sh, 0, engine)
		dialN(t, addr, 300, 300, a)
		b := shareServe(t, ln, sh, 3, engine)
		// b joins the share once its Serve runs: until it has accepted a
		// connection, a may still be alone in it and take them all.
		probes := int64(0)
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "b serving", func() error {
			if b.Stats().Accepted > 0 {
				return nil
			}
			dial(t, "tcp", addr)
			probes++
			return fmt.Errorf("b has accepted none of %d probes", probes)
		})
		dialN(t, addr, 0, 300+probes, a, b)
		nb0 := b.Stats().Connections
		dialN(t, addr, 300, 600+probes, a, b)
		na, nb := a.Stats().Connections, b.Stats().Connections
		t.Logf("a %d, b %d (%d probes)", na, nb, probes)
		if nb-nb0 < 240 {
			t.Errorf("b took %d of the 300 connections after it started, want at least 240 (a holds %d)", nb-nb0, na)
		}
		b.Drain()
		dialN(t, addr, 100, 700+probes, a, b)
		if n := a.Stats().Connections; n != na+100 {
			t.Errorf("a holds %d after b drained, want %d", n, na+100)
		}
	})
}
