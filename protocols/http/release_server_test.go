package http_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

var _ connections.StateReleaser = (*http.Protocol)(nil)

// TestIdleKeepAliveHoldsNoState: over the runtime, a keep-alive
// connection gives its protocol state back once it is answered and idle,
// and takes one again for its next requests.
func TestIdleKeepAliveHoldsNoState(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		var last atomic.Value // connections.Connection
		h := appHandler(t)
		app := h.OnMessage
		h.OnMessage = func(c connections.Connection, body []byte) {
			last.Store(c)
			app(c, body)
		}
		ts := serve(t, e, http.New(), 0, h)
		rc := dial(t, ts.addr)
		for round := 0; round < 3; round++ {
			rc.write(fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", round))
			if resp, body := rc.response("GET"); resp.StatusCode != 404 || body != fmt.Sprintf("no /r%d", round) {
				t.Fatalf("round %d: %d %q", round, resp.StatusCode, body)
			}
			if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "hello, goer" || resp.Close {
				t.Fatalf("round %d: %d %q close=%v", round, resp.StatusCode, body, resp.Close)
			}
			c := last.Load().(connections.Connection)
			testkit.Eventually(t, testkit.Wait, testkit.Poll, "state released", func() bool { return http.RequestOf(c) == nil })
		}
	})
}

// TestAnswersFromOtherGoroutines: under -race, answers sent from other
// goroutines (Send from OnConnect before the first request, Respond after
// OnMessage returned, without pausing) do not race with the dispatcher
// creating and releasing the connection's state.
func TestAnswersFromOtherGoroutines(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		const requests = 50
		done := make(chan struct{}, 1)
		// late[i] is the result of Respond for request i: the early
		// answer may have answered the first request (it raced with its
		// arrival), and then Respond finds no request left to answer.
		var late [requests]chan error
		for i := range late {
			late[i] = make(chan error, 1)
		}
		ts := serve(t, e, http.New(), 0, connections.Handler{
			OnConnect: func(c connections.Connection) {
				go func() {
					c.Send("early", false) // answers no request yet, or the first
					done <- struct{}{}
				}()
			},
			OnMessage: func(c connections.Connection, _ []byte) {
				path := http.RequestOf(c).Path()
				var i int
				if _, err := fmt.Sscanf(path, "/q%d", &i); err != nil || i < 0 || i >= requests {
					t.Errorf("path %q", path)
					return
				}
				go func() {
					late[i] <- http.Respond(c, &http.Response{Body: []byte("late " + path)})
				}()
			},
		})
		rc := dial(t, ts.addr)
		early := 0
		for i := 0; i < requests; i++ {
			rc.write(fmt.Sprintf("GET /q%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
			for {
				_, body := rc.response("GET")
				if body == "early" {
					early++
					if i == 0 {
						if err := <-late[0]; errors.Is(err, http.ErrNoRequest) {
							break // the early answer was the first request's
						} else if err != nil {
							t.Fatalf("Respond: %v", err)
						}
						late[0] <- nil
					}
					continue
				}
				if want := fmt.Sprintf("late /q%d", i); body != want {
					t.Fatalf("request %d: answer %q, want %q", i, body, want)
				}
				if err := <-late[i]; err != nil {
					t.Fatalf("request %d: Respond: %v", i, err)
				}
				break
			}
		}
		<-done
		if early > 1 {
			t.Fatalf("%d early answers", early)
		}
	})
}
