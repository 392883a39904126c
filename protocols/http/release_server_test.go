package http_test

import (
	"fmt"
	"strings"
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
		done := make(chan struct{}, requests+1)
		ts := serve(t, e, http.New(), 0, connections.Handler{
			OnConnect: func(c connections.Connection) {
				go func() {
					c.Send("early", false) // answers no request yet, or the first
					done <- struct{}{}
				}()
			},
			OnMessage: func(c connections.Connection, _ []byte) {
				path := http.RequestOf(c).Path()
				go func() {
					if err := http.Respond(c, &http.Response{Body: []byte("late " + path)}); err != nil {
						t.Errorf("Respond: %v", err)
					}
					done <- struct{}{}
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
					continue
				}
				if !strings.HasPrefix(body, "late /q") {
					t.Fatalf("request %d: answer %q", i, body)
				}
				break
			}
		}
		for i := 0; i < requests+1; i++ {
			<-done
		}
		if early > 1 {
			t.Fatalf("%d early answers", early)
		}
	})
}
