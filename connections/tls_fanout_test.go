//go:build unix

package connections_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/text"
)

// TestTLSFanoutSlowMember: a Fanout of records of a few KiB to TLS
// members of which some read nothing until the end, so that their
// sockets fill and a batched send of their records stops part way,
// arrives whole and in order at every member. The epoll loops seal a
// batch's records side by side into one buffer of the loop's, which the
// next batch uses again: what a send did not finish must wait in a
// buffer of the connection's own (it caught the rest left in the loop's
// buffer), and the buffer must not be reused before its batch is sent.
func TestTLSFanoutSlowMember(t *testing.T) {
	for _, e := range tlsEngines() {
		t.Run(engineName(e), func(t *testing.T) {
			const fast, slow, msgs = 3, 2, 2500
			var g group
			ln := newTLSLn(t, 0)
			cfg := connections.Config{Engine: e.Name, CallbackGoroutines: e.Pool, Protocol: text.New(),
				MaxSendBufferSize: 32 << 20, // the slow members' queues: never full here
				Handler: connections.Handler{OnMessage: func(c connections.Connection, data []byte) {
					if string(data) == "join" {
						g.join(c)
					}
				}}}
			serveTLSLn(t, ln, cfg)
			addr := ln.Addr().String()
			msg := func(m int) string {
				return fmt.Sprintf("m %d %s", m, strings.Repeat(string(rune('a'+m%26)), 3000+m%9*100))
			}
			readers := make([]*bufio.Reader, fast+slow)
			for i := range readers {
				d := &net.Dialer{Timeout: 5 * time.Second}
				if i >= fast {
					d.Control = smallBuffers(syscall.SO_RCVBUF)
				}
				c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetDeadline(time.Now().Add(60 * time.Second))
				readers[i] = joinGroup(t, i, c)
			}
			cs := g.members()
			got := make(chan struct{}, msgs) // the first member's progress
			read := func(i int) error {
				for m := 0; m < msgs; m++ {
					if i == 0 && m > 0 {
						got <- struct{}{}
					}
					l, err := readers[i].ReadString('\n')
					if err != nil {
						return fmt.Errorf("member %d after %d messages: %v", i, m, err)
					}
					if want := msg(m); strings.TrimSuffix(l, "\n") != want {
						return fmt.Errorf("member %d: message %d reads %.40q, want %.40q", i, m, l, want)
					}
				}
				return nil
			}
			errs := make(chan error, fast+slow)
			for i := 0; i < fast; i++ {
				go func() { errs <- read(i) }()
			}
			var f connections.Fanout
			for m := 0; m < msgs; m++ {
				f.Begin([]byte(msg(m)), false)
				for _, c := range cs {
					if err := f.Add(c); err != nil {
						t.Fatalf("message %d: %v", m, err)
					}
				}
				if n := f.End(); n != fast+slow {
					t.Fatalf("message %d sent to %d of %d", m, n, fast+slow)
				}
				// In step with the first member: each message gathered
				// on its own, sealed into the loop's buffer.
				if m < msgs-1 {
					select {
					case <-got:
					case err := <-errs:
						t.Fatal(err)
					}
				}
			}
			for i := fast; i < fast+slow; i++ {
				go func() { errs <- read(i) }()
			}
			for range fast + slow {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
