package connections_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/text"
)

// TestDrainAnswersEveryAcceptedConnection hammers a server with short
// connections (connect, one request, its answer, close) while Shutdown
// runs: every connection the server accepted must get its answer, even one
// accepted in the instant the listener closed. Connections still in the
// kernel's accept queue are refused by the closing listener and are not
// counted as accepted.
func TestDrainAnswersEveryAcceptedConnection(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine engineCase) {
		const rounds, clients = 25, 6
		for round := 0; round < rounds; round++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := connections.NewServer(connections.Config{
				Engine: engine.name, CallbackGoroutines: engine.pool, Loops: 2,
				Protocol: text.New(), Logger: zerolog.New(zerolog.NewTestWriter(t)),
				Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
					c.SendBytes(d, false)
					c.Close()
				}},
			})
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			var answered atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < clients; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
						if err != nil {
							return // the listener is gone
						}
						c.SetDeadline(time.Now().Add(10 * time.Second))
						io.WriteString(c, "ping\n")
						if l, err := bufio.NewReader(c).ReadString('\n'); err == nil && l == "ping\n" {
							answered.Add(1)
						}
						c.Close()
					}
				}()
			}
			eventually(t, "traffic", func() bool { return answered.Load() >= int64(rand.IntN(20)) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = s.Shutdown(ctx)
			cancel()
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatalf("round %d: Shutdown: %v", round, err)
			}
			if err := <-served; !errors.Is(err, connections.ErrServerClosed) {
				t.Fatalf("round %d: Serve: %v", round, err)
			}
			if acc, ans := s.Stats().Accepted, answered.Load(); acc != uint64(ans) {
				t.Fatalf("round %d: %d connections accepted, %d answered", round, acc, ans)
			}
		}
	})
}

// TestCloseWhileServeStarts closes the server at random moments while
// Serve is still starting: Serve returns, and nothing (event loops, the
// watchdog, callback pools) is left running.
func TestCloseWhileServeStarts(t *testing.T) {
	eachEngine(t, func(t *testing.T, engine engineCase) {
		for i := 0; i < 400; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := connections.NewServer(connections.Config{
				Engine: engine.name, CallbackGoroutines: engine.pool, Loops: 2,
				Logger: zerolog.New(zerolog.NewTestWriter(t)),
			})
			done := make(chan error, 1)
			go func() { done <- s.Serve(ln) }()
			spin(time.Duration(rand.IntN(200)) * time.Microsecond)
			s.Close()
			select {
			case err := <-done:
				if !errors.Is(err, connections.ErrServerClosed) {
					t.Fatalf("iteration %d: Serve: %v", i, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("iteration %d: Serve still running after Close", i)
			}
			ln.Close()
		}
		goleak.VerifyNone(t)
	})
}

// spin lets d pass without sleeping, to vary the interleaving of two
// goroutines at a finer grain than the timer's.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
		runtime.Gosched()
	}
}
