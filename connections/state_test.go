package connections_test

import (
	"bufio"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/text"
)

// stampText is the text protocol with per-connection state that Input
// creates, Encode reads (on whichever goroutine sends) and ReleaseState
// drops whenever the connection idles.
type stampText struct{ text.Protocol }

type stampState struct{ n int }

func (p stampText) Input(c protocols.Conn, buf []byte) (int, error) {
	if c.State() == nil {
		runtime.Gosched() // let a sender in before the state exists
		c.SetState(&stampState{})
	}
	return p.Protocol.Input(c, buf)
}

func (p stampText) Encode(c protocols.Conn, dst, msg []byte) ([]byte, error) {
	if st, ok := c.State().(*stampState); ok {
		st.n++ // Encode runs with the send lock held
		dst = append(dst, "stamped "...)
	}
	return p.Protocol.Encode(c, dst, msg)
}

func (p stampText) ReleaseState(c protocols.Conn) { c.SetState(nil) }

// TestStateWithSendsFromOtherGoroutines: another goroutine sends from
// OnConnect on, before the first request creates the protocol's state and
// while it is released and made again; under -race, State and SetState
// must not race with Encode.
func TestStateWithSendsFromOtherGoroutines(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		const requests = 100
		pushDone := make(chan struct{})
		var stop atomic.Bool
		var pushed atomic.Int64
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: stampText{Protocol: text.New()},
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) {
					go func() {
						defer close(pushDone)
						for !stop.Load() {
							if c.Send("push", false) == nil {
								pushed.Add(1)
							}
							runtime.Gosched()
						}
					}()
				},
				OnMessage: echo,
			},
		})
		c := dial(t, "tcp", addr)
		r := bufio.NewReader(c)
		// One request at a time: the state is released after each answer
		// and made again by the next request's Input.
		for i := 0; i < requests; i++ {
			if _, err := io.WriteString(c, "req\n"); err != nil {
				stop.Store(true)
				t.Fatal(err)
			}
			for answered := false; !answered; {
				l, err := r.ReadString('\n')
				if err != nil {
					stop.Store(true)
					t.Fatalf("request %d: %v", i, err)
				}
				switch strings.TrimPrefix(l, "stamped ") {
				case "req\n":
					answered = true
				case "push\n":
				default:
					stop.Store(true)
					t.Fatalf("unexpected line %q", l)
				}
			}
		}
		stop.Store(true)
		<-pushDone
		if pushed.Load() == 0 {
			t.Fatal("nothing pushed")
		}
	})
}
