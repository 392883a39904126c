//go:build unix

package main_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// resumeRound dials addr once per cache (a client each), echoes over
// every connection (so that a TLS 1.3 ticket, sent after the handshake,
// reaches the client) and counts the handshakes that resumed.
func resumeRound(t *testing.T, addr string, version uint16, caches []tls.ClientSessionCache) (resumed int) {
	t.Helper()
	for _, cache := range caches {
		c, err := tls.Dial("tcp", addr, &tls.Config{
			InsecureSkipVerify: true, ServerName: "goes.test",
			MinVersion: version, MaxVersion: version, ClientSessionCache: cache,
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.ConnectionState().DidResume {
			resumed++
		}
		echoRaw(t, c, "ticket")
	}
	return resumed
}

// TestTLSResumption: one ticket key set per master, so that a client
// resumes whichever of the 4 workers accepts it (each worker making its
// own keys resumed 16 of 40), and the next generation takes the keys
// over on reload (no session from before resumed after it). TLS 1.2 and
// 1.3.
func TestTLSResumption(t *testing.T) {
	s := tlsConfSetup(t, `{"listeners": [
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 4, "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	addr := listenAddrs(t, st)["tls"]
	const n = 40
	versions := map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
	before := map[string][]tls.ClientSessionCache{}
	for name, v := range versions {
		one := []tls.ClientSessionCache{tls.NewLRUClientSessionCache(8)}
		resumeRound(t, addr, v, one) // the full handshake
		got := 0
		for range n {
			got += resumeRound(t, addr, v, one)
		}
		t.Logf("TLS %s: %d of %d reconnects to 4 workers resumed", name, got, n)
		if got*100 < n*95 {
			t.Errorf("TLS %s: %d of %d reconnects resumed, want ≥ 95 %%", name, got, n)
		}
		// n clients, each with a session from before the reload.
		caches := make([]tls.ClientSessionCache, n)
		for i := range caches {
			caches[i] = tls.NewLRUClientSessionCache(8)
		}
		resumeRound(t, addr, v, caches)
		before[name] = caches
	}
	// The figures (goes_tls_handshakes_total, goes_tls_resumed_handshakes_total):
	// 2×(1+40+40) handshakes, of which 2×40 resumed; a connection that
	// sends garbage is a failed one.
	garbage, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	garbage.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, garbage) // until the worker closes it
	garbage.Close()
	testkit.Eventually(t, 10*time.Second, 20*time.Millisecond, "TLS handshake figures", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		var ok, failed, resumed uint64
		for _, w := range st.Workers {
			ok += w.TLSHandshakes[ipc.TLSHandshakeOK]
			failed += w.TLSHandshakes[ipc.TLSHandshakeFailed]
			resumed += w.TLSResumed
		}
		if ok != 2*(1+2*n) || resumed != 2*n || failed != 1 {
			return fmt.Errorf("handshakes ok %d, resumed %d, failed %d; want %d, %d, 1", ok, resumed, failed, 2*(1+2*n), 2*n)
		}
		return nil
	})
	s.mustCLI("reload")
	for name, v := range versions {
		got := resumeRound(t, addr, v, before[name])
		t.Logf("TLS %s: %d of %d sessions from before the reload resumed after it", name, got, n)
		if got*100 < n*95 {
			t.Errorf("TLS %s: %d of %d sessions resumed across the reload, want ≥ 95 %%", name, got, n)
		}
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// firstSession is a client session cache that keeps the first session
// it is given: a client that keeps presenting one old ticket.
type firstSession struct{ s *tls.ClientSessionState }

func (f *firstSession) Get(string) (*tls.ClientSessionState, bool) { return f.s, f.s != nil }
func (f *firstSession) Put(_ string, s *tls.ClientSessionState) {
	if f.s == nil {
		f.s = s
	}
}

// TestTLSTicketRotation: the master rotates the ticket keys of all its
// workers (ticket_key_rotation): an old ticket stops resuming once its
// key has left the set, on every worker.
func TestTLSTicketRotation(t *testing.T) {
	s := tlsConfSetup(t, `{"ticket_key_rotation": "100ms", "listeners": [
  {"name": "tls", "listen": "tls://127.0.0.1:0", "count": 2, "cert_file": %[1]q, "key_file": %[2]q}
]}`)
	st := s.start()
	addr := listenAddrs(t, st)["tls"]
	old := []tls.ClientSessionCache{&firstSession{}}
	resumeRound(t, addr, tls.VersionTLS13, old)
	// 100 ms rotations, 3 keys kept: the ticket is refused from 200 to
	// 300 ms on; without rotations reaching the workers, never.
	expired := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if resumeRound(t, addr, tls.VersionTLS13, old) == 0 {
			expired = true
			break
		}
	}
	if !expired {
		t.Fatal("an old ticket still resumes after 10 s of 100 ms key rotations")
	}
	s.stopAndCheck(st)
}

// tlsConfSetup is a setup whose config is conf, a format in which %[1]q
// stands for a self-signed certificate's file and %[2]q for its key's.
func tlsConfSetup(t *testing.T, conf string) *setup {
	t.Helper()
	dir := t.TempDir()
	cert, key := testkit.WriteCert(t, dir)
	path := filepath.Join(dir, "goes.json")
	if err := os.WriteFile(path, fmt.Appendf(nil, conf, cert, key), 0o600); err != nil {
		t.Fatal(err)
	}
	return &setup{t: t, bin: bin, runDir: filepath.Join(dir, "run"), conf: path}
}
