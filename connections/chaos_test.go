package connections_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

// TestLifecycleChaos drives many connections while other goroutines send
// to, pause, resume, close and destroy them at random, and the peers hang
// up at random too. Nothing may deadlock, panic or leak: every OnConnect
// is matched by one OnClose and Close returns.
func TestLifecycleChaos(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const clients, lines = 24, 40
		var mu sync.Mutex
		opened, closedN := 0, 0
		live := map[uint64]connections.Connection{}
		stop := make(chan struct{})
		var bg sync.WaitGroup
		s, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool, Loops: 2,
			Protocol: text.New(), MaxSendBufferSize: 4 << 10,
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) {
					mu.Lock()
					opened++
					live[c.ID()] = c
					mu.Unlock()
				},
				OnMessage: func(c connections.Connection, d []byte) {
					switch rand.IntN(20) {
					case 0:
						c.PauseRecv()
						time.AfterFunc(time.Millisecond, c.ResumeRecv)
					case 1:
						c.Close()
					}
					c.SendBytes(d, false)
				},
				OnClose: func(c connections.Connection) {
					mu.Lock()
					closedN++
					delete(live, c.ID())
					mu.Unlock()
				},
			},
		})
		// A meddler acts on random live connections from outside.
		bg.Add(1)
		go func() {
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				var pick connections.Connection
				for _, c := range live {
					pick = c
					break
				}
				mu.Unlock()
				if pick != nil {
					switch rand.IntN(10) {
					case 0:
						pick.Destroy()
					case 1:
						pick.PauseRecv()
						pick.ResumeRecv()
					default:
						pick.Send("from outside", false)
					}
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dial(t, "tcp", addr)
				go io.Copy(io.Discard, bufio.NewReader(c))
				for j := 0; j < lines; j++ {
					if _, err := fmt.Fprintf(c, "client %d line %d\n", i, j); err != nil {
						return
					}
					if rand.IntN(lines*2) == 0 {
						c.Close()
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		bg.Wait()
		s.Close()
		mu.Lock()
		defer mu.Unlock()
		if opened != closedN || len(live) != 0 {
			t.Fatalf("OnConnect %d times, OnClose %d times, %d still live", opened, closedN, len(live))
		}
		if st := s.Stats(); st.Connections != 0 {
			t.Fatalf("stats after Close: %+v", st)
		}
	})
}
