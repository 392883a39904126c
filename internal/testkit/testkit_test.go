package testkit_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
)

// TestEventuallyHolds: Eventually returns as soon as the condition holds,
// for both kinds of condition, having called it once per poll.
func TestEventuallyHolds(t *testing.T) {
	n := 0
	testkit.Eventually(t, testkit.Wait, time.Millisecond, "third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("bool condition called %d times, want 3", n)
	}
	n = 0
	testkit.Eventually(t, testkit.Wait, time.Millisecond, "third call", func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("error condition called %d times, want 3", n)
	}
}

// TestEventuallyFakeClock: in a synctest bubble Eventually waits on the
// bubble's clock: a condition that holds after 15 s of fake time is seen
// within one poll of it.
func TestEventuallyFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		testkit.Eventually(t, testkit.Wait, time.Second, "15 s", func() bool { return time.Since(start) >= 15*time.Second })
		if took := time.Since(start); took < 15*time.Second || took > 16*time.Second {
			t.Fatalf("returned after %v of fake time, want 15 s to 16 s", took)
		}
	})
}

// TestEventuallyFails: a condition that never holds fails the test after
// the deadline, with what was awaited and the condition's last error, and
// nothing after Eventually runs. The failing test runs in a child process
// (this test binary, re-run): its failure is the child's exit status.
func TestEventuallyFails(t *testing.T) {
	const child = "TESTKIT_EVENTUALLY_CHILD"
	if kind := os.Getenv(child); kind != "" {
		n := 0
		if kind == "bool" {
			testkit.Eventually(t, 200*time.Millisecond, 10*time.Millisecond, "the moon", func() bool { return false })
		} else {
			testkit.Eventually(t, 200*time.Millisecond, 10*time.Millisecond, "the moon", func() error { n++; return fmt.Errorf("still cheese %d", n) })
		}
		fmt.Println("Eventually returned")
		return
	}
	for _, tc := range []struct {
		kind, want string
	}{
		{kind: "bool", want: "waiting for the moon\n"},
		{kind: "error", want: "waiting for the moon: still cheese "},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			start := time.Now()
			cmd := exec.Command(os.Args[0], "-test.run=^TestEventuallyFails$", "-test.v")
			cmd.Env = append(os.Environ(), child+"="+tc.kind)
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("child: %v, want exit status 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "timed out after 200ms (") || !strings.Contains(string(out), tc.want) {
				t.Fatalf("child's output lacks the deadline or %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "Eventually returned") {
				t.Fatalf("Eventually returned after failing:\n%s", out)
			}
			if took < 200*time.Millisecond {
				t.Fatalf("child failed after %v, before the deadline", took)
			}
		})
	}
}

// TestEngines: the engine names are the connections package's, and
// EachEngine runs one subtest per engine, named after it.
func TestEngines(t *testing.T) {
	want := []string{"engine=std"}
	if runtime.GOOS == "linux" {
		want = append(want, "engine=epoll", "engine=epoll-pool4")
	}
	var got []string
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		got = append(got, t.Name()[strings.LastIndexByte(t.Name(), '/')+1:])
		if e.Name != connections.EngineStd && e.Name != connections.EngineEpoll {
			t.Errorf("engine %q is not one of the connections package", e.Name)
		}
	})
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("subtests %q, want %q", got, want)
	}
}

// TestSelfSigned: a TLS server on loopback with the certificate is trusted
// by a client that has only it as root, for 127.0.0.1, ::1 and localhost.
func TestSelfSigned(t *testing.T) {
	cert := testkit.SelfSigned(t)
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(testkit.Wait))
				l, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, l)
			}()
		}
	}()
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Fatalf("server name %s: %v", name, err)
		}
		c.SetDeadline(time.Now().Add(testkit.Wait))
		io.WriteString(c, "hello\n")
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "hello\n" {
			t.Fatalf("server name %s: %q, %v", name, l, err)
		}
		c.Close()
	}
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com"}); err == nil {
		t.Fatal("certificate accepted for example.com")
	}
}

// TestWriteCert: the files load as a key pair, are the owner's only, and
// every call makes a new certificate.
func TestWriteCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.WriteCert(t, dir)
	for _, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := testkit.WriteCert(t, filepath.Join(t.TempDir()))
	b, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := os.ReadFile(certFile); bytes.Equal(first, b) {
		t.Fatal("two calls wrote the same certificate")
	}
	if pair.Leaf == nil || pair.Leaf.Subject.CommonName != "goes test" {
		t.Fatalf("leaf %+v", pair.Leaf)
	}
}

// TestIsReset: a connection its peer aborts (SO_LINGER 0) fails with a
// reset; the end of a stream and other errors are not resets.
func TestIsReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc.(*net.TCPConn).SetLinger(0)
	sc.Close()
	c.SetReadDeadline(time.Now().Add(testkit.Wait))
	_, err = c.Read(make([]byte, 1))
	if !testkit.IsReset(err) {
		t.Fatalf("read from an aborted connection: %v, not a reset", err)
	}
	for _, err := range []error{nil, io.EOF, net.ErrClosed, errors.New("connection reset by peer, says a string")} {
		if testkit.IsReset(err) {
			t.Errorf("IsReset(%v) = true", err)
		}
	}
}

// TestPattern: the same bytes for the same length, every shorter pattern
// a prefix of a longer one, and no short period.
func TestPattern(t *testing.T) {
	long := testkit.Pattern(1 << 16)
	if !bytes.Equal(testkit.Pattern(1000), long[:1000]) || !bytes.Equal(testkit.Pattern(1<<16), long) {
		t.Fatal("Pattern is not a deterministic prefix")
	}
	for p := 1; p <= 4096; p++ {
		if bytes.Equal(long[:1024], long[p:p+1024]) {
			t.Fatalf("Pattern repeats with period %d", p)
		}
	}
}

// TestPipeListener: in a synctest bubble, a server accepting from the
// listener talks to its dialer, a read deadline expires on the bubble's
// clock, and a closed listener fails Accept with net.ErrClosed.
func TestPipeListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := testkit.NewPipeListener(t)
		if ln.Addr().Network() != "pipe" {
			t.Fatalf("network %q", ln.Addr().Network())
		}
		conns := make(chan net.Conn, 2)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					close(conns)
					return
				}
				conns <- c
			}
		}()
		c := ln.Dial(t)
		sc := <-conns
		go func() {
			l, _ := bufio.NewReader(sc).ReadString('\n')
			io.WriteString(sc, strings.ToUpper(l))
			sc.Close()
		}()
		io.WriteString(c, "hello\n")
		if b, err := io.ReadAll(c); err != nil || string(b) != "HELLO\n" {
			t.Fatalf("got %q, %v", b, err)
		}

		quiet := ln.Dial(t)
		qs := <-conns
		defer qs.Close()
		start := time.Now()
		quiet.SetReadDeadline(start.Add(time.Hour))
		_, err := quiet.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) != time.Hour {
			t.Fatalf("read from a silent peer: %v after %v, want a timeout after 1h of fake time", err, time.Since(start))
		}

		ln.Close()
		if _, ok := <-conns; ok {
			t.Fatal("a connection accepted after Close")
		}
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	})
}
