package tlsrec_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/internal/testkit"
)

// offloaded counts the server's sessions served by tlsrec's own record
// layer and those crypto/tls serves.
func (s *server) offloaded() (own, std int) {
	s.sessions.Range(func(k, _ any) bool {
		if k.(*tlsrec.Session).Offloaded() {
			own++
		} else if k.(*tlsrec.Session).Established() {
			std++
		}
		return true
	})
	return own, std
}

// TestOffloadedByVersion: a TLS 1.3 session with AES-GCM is handed over
// by crypto/tls after its handshake; a TLS 1.2 one stays crypto/tls's.
// Both echo the same.
func TestOffloadedByVersion(t *testing.T) {
	for _, c := range []struct {
		vers     uint16
		suite    uint16
		own, std int
	}{
		{tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, 1, 0},
		{tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0, 1},
	} {
		t.Run(fmt.Sprintf("v%x", c.vers), func(t *testing.T) {
			s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
			conf := clientConf()
			conf.MaxVersion = c.vers
			tc := dial(t, s, conf)
			echo(t, tc, testkit.Pattern(5000))
			if st := tc.ConnectionState(); st.CipherSuite != c.suite {
				t.Fatalf("cipher suite %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(c.suite))
			}
			if own, std := s.offloaded(); own != c.own || std != c.std {
				t.Fatalf("sessions on tlsrec's record layer %d, on crypto/tls %d; want %d, %d", own, std, c.own, c.std)
			}
		})
	}
}

func echo(t testing.TB, c io.ReadWriter, want []byte) {
	t.Helper()
	if _, err := c.Write(want); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("echo differs")
	}
}

// TestKeyUpdateAfterLimit: once a write key has sealed its share of
// records (2^24 for AES-GCM; 3 here), the session sends a KeyUpdate and
// goes on under the next key, which crypto/tls's client follows.
func TestKeyUpdateAfterLimit(t *testing.T) {
	old := tlsrec.SetKeyUpdateAfter(3)
	defer tlsrec.SetKeyUpdateAfter(old)
	s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
	c := dial(t, s, clientConf())
	for i := 0; i < 20; i++ {
		echo(t, c, testkit.Pattern(100+i))
	}
	echo(t, c, testkit.Pattern(100<<10)) // several records
	if own, _ := s.offloaded(); own != 1 {
		t.Fatalf("%d sessions on tlsrec's record layer, want 1", own)
	}
}

// opensslClient is `openssl s_client` connected to addr, lines written to
// its input; its output is read line by line.
type opensslClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	log *bytes.Buffer
}

func newOpenSSLClient(t *testing.T, addr string, args ...string) *opensslClient {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl (Debian package openssl, installed by .ci/run): %v", err)
	}
	// stdbuf: s_client's -msg lines go through stdio, block-buffered
	// into a pipe.
	stdbuf, err := exec.LookPath("stdbuf")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(stdbuf, append([]string{"-oL", path, "s_client", "-connect", addr, "-msg"}, args...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &opensslClient{cmd: cmd, in: in, out: bufio.NewScanner(out), log: &bytes.Buffer{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return c
}

// until reads output lines until one satisfies ok (and returns true), or
// the output ends or the deadline passes; the lines read go to the log.
func (c *opensslClient) until(d time.Duration, ok func(string) bool) bool {
	found := make(chan bool, 1)
	go func() {
		for c.out.Scan() {
			line := c.out.Text()
			fmt.Fprintln(c.log, line)
			if ok(line) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case f := <-found:
		return f
	case <-time.After(d):
		c.cmd.Process.Kill()
		<-found
		return false
	}
}

// TestOpenSSLKeyUpdate: OpenSSL's client asks for a key update ("K":
// KeyUpdate with update_requested); the session answers with its own
// KeyUpdate and both sides go on under the next keys. With
// ChaCha20-Poly1305, which crypto/cipher does not serve, crypto/tls keeps
// the session and answers the same.
func TestOpenSSLKeyUpdate(t *testing.T) {
	for _, c := range []struct {
		suite    string
		own, std int
	}{
		{"TLS_AES_256_GCM_SHA384", 1, 0},
		{"TLS_AES_128_GCM_SHA256", 1, 0},
		{"TLS_CHACHA20_POLY1305_SHA256", 0, 1},
	} {
		t.Run(c.suite, func(t *testing.T) {
			s := newServer(t, tlsrec.NewPool(0, 0), 10*time.Second)
			cl := newOpenSSLClient(t, s.addr(), "-tls1_3", "-ciphersuites", c.suite)
			line := func(want string) {
				t.Helper()
				if !cl.until(10*time.Second, func(l string) bool { return l == want }) {
					t.Fatalf("no %q from openssl s_client; its output:\n%s", want, cl.log)
				}
			}
			fmt.Fprintln(cl.in, "hello")
			line("hello")
			// s_client takes a line that begins with K as its command (a
			// KeyUpdate with update_requested), and drops the rest of
			// what it read with it: one line at a time. -msg shows the
			// server's KeyUpdate as it reads it.
			fmt.Fprintln(cl.in, "K")
			line("<<< TLS 1.3, Handshake [length 0005], KeyUpdate")
			fmt.Fprintln(cl.in, "world")
			line("world")
			fmt.Fprintln(cl.in, "k") // update_not_requested: no answer
			line(">>> TLS 1.3, Handshake [length 0005], KeyUpdate")
			fmt.Fprintln(cl.in, "again")
			line("again")
			if !strings.Contains(cl.log.String(), c.suite) {
				t.Fatalf("not %s; openssl's output:\n%s", c.suite, cl.log)
			}
			if n := strings.Count(cl.log.String(), "<<< TLS 1.3, Handshake [length 0005], KeyUpdate"); n != 1 {
				t.Fatalf("%d KeyUpdates from the server, want 1 (the answer to K)", n)
			}
			if own, std := s.offloaded(); own != c.own || std != c.std {
				t.Fatalf("sessions on tlsrec's record layer %d, on crypto/tls %d; want %d, %d", own, std, c.own, c.std)
			}
		})
	}
}

// TestKeyLogPassedOn: a configuration's own KeyLogWriter (a debugging
// aid) still gets every line, the session handed over all the same.
func TestKeyLogPassedOn(t *testing.T) {
	conf := serverConf(t)
	var log bytes.Buffer // crypto/tls serialises key log writes
	conf.KeyLogWriter = &log
	s, _ := establishWith(t, conf, clientConf())
	defer s.Close()
	if !s.Offloaded() {
		t.Fatal("a TLS 1.3 session was not handed over")
	}
	for _, label := range []string{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} {
		if !strings.Contains(log.String(), label+" ") {
			t.Fatalf("the configuration's key log has no %s line:\n%s", label, log.String())
		}
	}
}
