//go:build unix

package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/master"
)

// TestNoLoopWarningWhileDraining: stop -g with an open text connection
// drains its worker, whose event loops without connections end at once
// while the connection's loop goes on answering. The event-loop watchdog
// stays quiet meanwhile: it used to take an ended loop for one blocked by
// a callback and warn every second of the drain.
func TestNoLoopWarningWhileDraining(t *testing.T) {
	// Four loops per worker: three of them end when the drain begins.
	t.Setenv("GOMAXPROCS", "4")
	s := newConfSetup(t, `{
  "log_level": "debug",
  "stop_timeout": "30s",
  "listeners": [{"name": "text", "listen": "text://127.0.0.1:0", "count": 1}]
}`)
	st := s.start()
	c := dialText(t, s.textAddr)
	c.echo(t, "before")
	stopped := make(chan proctest.Result, 1)
	go func() { stopped <- s.cli("stop", "-g") }()
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "the text worker draining", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		for _, w := range st.Workers {
			if w.Name == "text" && w.State == master.StateDraining && w.Connections == 1 {
				return nil
			}
		}
		return fmt.Errorf("no text worker draining with our connection: %+v", st.Workers)
	})
	// The watchdog looks every quarter second and used to warn after one
	// to two seconds: the connection stays open and answers, every 10 ms,
	// for three.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && n < 1000; n++ {
		c.echo(t, fmt.Sprintf("draining %d", n))
		<-tick.C
	}
	const msg = "event loop blocked by a callback; its other connections wait (see Config.CallbackGoroutines)"
	if k := s.countLog(msg, -1); k > 0 {
		t.Errorf("%d event-loop warnings while draining (%d echoes answered)", k, n)
	}
	c.Close()
	if r := <-stopped; r.Code != 0 || !strings.Contains(r.Stdout, "stopped") {
		t.Fatalf("stop -g: %s", r)
	}
	s.checkGone(st)
}
