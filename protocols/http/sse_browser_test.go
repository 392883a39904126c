//go:build unix

package http_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/browsertest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// TestSSEChromium has headless Chromium's EventSource read an event
// stream from the goes server, which also serves the page: the events of
// /sse (ids, a typed event, a multi-line and a UTF-8 payload, retry 100
// ms), then, once the stream ends, the reconnection that carries
// Last-Event-ID.
func TestSSEChromium(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("testdata", "sse.html"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		served   atomic.Bool
		finished atomic.Bool // the page has reported: the browser may go away mid-stream
		mu       sync.Mutex
		lastIDs  []string // Last-Event-ID of every /events request
		resultCh = make(chan []byte, 1)
	)
	t.Cleanup(wg.Wait)
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, connections.Handler{
		OnMessage: func(c connections.Connection, body []byte) {
			r := http.RequestOf(c)
			switch r.Path() {
			case "/":
				served.Store(true)
				http.Respond(c, &http.Response{Body: page})
			case "/events":
				last := r.Header("Last-Event-ID")
				mu.Lock()
				lastIDs = append(lastIDs, last)
				mu.Unlock()
				s, err := http.SSE(c)
				if err != nil {
					t.Errorf("SSE: %v", err)
					return
				}
				events := sseEvents
				if last != "" {
					events = []http.Event{{Data: "resumed after " + last}}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, ev := range events {
						if err := s.Send(ev); err != nil && !finished.Load() {
							t.Errorf("Send: %v", err)
							return
						}
					}
					if err := s.End(); err != nil && !finished.Load() {
						t.Errorf("End: %v", err)
					}
				}()
			case "/result":
				finished.Store(true)
				select {
				case resultCh <- bytes.Clone(body):
				default:
				}
				http.Respond(c, &http.Response{Status: 204})
			default:
				http.Respond(c, &http.Response{Status: 404})
			}
		},
	})
	url := "http://" + ts.addr + "/"
	raw := browsertest.Run(t, url, &served, resultCh, 60*time.Second)
	t.Logf("chromium saw: %s", raw)
	var r struct {
		Events []struct{ Type, Data, ID string }
		Error  string
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	if r.Error != "" {
		t.Fatalf("page: %s", r.Error)
	}
	want := []struct{ Type, Data, ID string }{
		{"message", "hello", "1"},
		{"multi", "line one\nline two", "1"},
		{"message", "über ✓", "3"},
		{"message", "resumed after 3", "3"},
	}
	if len(r.Events) != len(want) {
		t.Fatalf("events %+v, want %+v", r.Events, want)
	}
	for i := range want {
		if r.Events[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, r.Events[i], want[i])
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "" || lastIDs[1] != "3" {
		t.Fatalf("Last-Event-ID of the /events requests: %q, want \"\" then \"3\"", lastIDs)
	}
}
