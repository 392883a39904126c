//go:build unix

package master

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

func TestFDReserve(t *testing.T) {
	r := newFDReserve(4)
	if n := r.held(); n != 4 {
		t.Fatalf("a new reserve holds %d, want 4", n)
	}
	if !r.release() || r.held() != 3 {
		t.Fatalf("after a release the reserve holds %d, want 3", r.held())
	}
	r.refill()
	if n := r.held(); n != 4 {
		t.Fatalf("after a refill the reserve holds %d, want 4", n)
	}
	r.close()
	if r.release() {
		t.Fatal("a closed reserve released a descriptor")
	}
	r.refill()
	if n := r.held(); n != 0 {
		t.Fatalf("a closed reserve refilled to %d", n)
	}
}

// TestAdminConnectionCap: the admin endpoint holds at most
// AdminMaxConnections connections; one more is reset at once; a
// connection that sends nothing is closed after the header timeout, and
// the endpoint serves again.
func TestAdminConnectionCap(t *testing.T) {
	const max = 3
	_, base := startAdmin(t, 1, nil, func(o *Options) { o.AdminMaxConnections = max })
	addr := strings.TrimPrefix(base, "http://")
	var held []net.Conn
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The endpoint may not have accepted them all yet: a connection over
	// the cap is the one reset at once.
	testkit.Eventually(t, 5*time.Second, testkit.Poll, "a connection over the cap reset", func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil // reset before the handshake ended: refused too
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, io.EOF) || !testkit.IsReset(err) {
			return fmt.Errorf("read on a connection over the cap: %v, want a reset", err)
		}
		return nil
	})
	t0 := time.Now()
	held[0].SetReadDeadline(time.Now().Add(adminReadHeaderTimeout + 5*time.Second))
	if _, err := held[0].Read(make([]byte, 1)); err == nil {
		t.Fatalf("an idle connection read %v", err)
	}
	if took := time.Since(t0); took > adminReadHeaderTimeout+2*time.Second {
		t.Fatalf("an idle connection was closed after %v, want about %v", took, adminReadHeaderTimeout)
	}
	for _, c := range held {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, testkit.Poll, "the endpoint serves again", func() error {
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
}

// TestControlConnectionCap: the control socket holds at most
// controlMaxConns connections; one more is told "master busy" at once;
// and status answers again once they are gone.
func TestControlConnectionCap(t *testing.T) {
	const over = 8
	tm := startMaster(t, 1, nil, nil)
	tm.waitReady()
	var conns []net.Conn
	for range controlMaxConns + over {
		c, err := net.Dial("unix", tm.paths.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	busy, open := 0, 0
	deadline := time.Now().Add(2 * time.Second) // within the master's wait for a request (10 s)
	type read struct {
		msg ipc.Message
		err error
	}
	reads := make(chan read, len(conns))
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(deadline)
			msg, err := ipc.NewConn(c).Recv()
			reads <- read{msg, err}
		}()
	}
	for range conns {
		r := <-reads
		switch {
		case r.err == nil && r.msg.Type == ipc.TypeError && strings.Contains(r.msg.Error, "master busy"):
			busy++
		case errors.Is(r.err, os.ErrDeadlineExceeded):
			open++ // held, waiting for its request
		default:
			t.Errorf("an idle control connection read %+v, %v", r.msg, r.err)
		}
	}
	if busy != over || open != controlMaxConns {
		t.Fatalf("%d idle control connections: %d told busy, %d held; want %d and %d", len(conns), busy, open, over, controlMaxConns)
	}
	for _, c := range conns {
		c.Close()
	}
	testkit.Eventually(t, 5*time.Second, testkit.Poll, "status answers again", func() error {
		_, err := tm.paths.Request(ipc.Message{Type: ipc.TypeStatus}, 2*time.Second)
		return err
	})
}
