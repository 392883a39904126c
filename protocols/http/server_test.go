package http_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptrace"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const ioTimeout = 10 * time.Second

// testServer is the protocol served by the real connections runtime on a
// loopback listener.
type testServer struct {
	srv  *connections.Server
	addr string
}

// serve starts a server for p with handler h on 127.0.0.1:0; it is closed
// when the test ends.
func serve(t testing.TB, e testkit.Engine, p *http.Protocol, maxPackage int, h connections.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, e, ln, p, maxPackage, h)
}

// serveListener is serve on a listener of the caller's.
func serveListener(t testing.TB, e testkit.Engine, ln net.Listener, p *http.Protocol, maxPackage int, h connections.Handler) *testServer {
	t.Helper()
	srv := connections.NewServer(connections.Config{
		Protocol:           p,
		MaxPackageSize:     maxPackage,
		Handler:            h,
		Engine:             e.Name,
		Loops:              1,
		CallbackGoroutines: e.Pool,
		Logger:             testkit.Logger(t),
	})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return &testServer{srv: srv, addr: ln.Addr().String()}
}

// appHandler answers like a small application: "/" with Send, the rest
// with Respond.
func appHandler(t testing.TB) connections.Handler {
	return connections.Handler{
		OnMessage: func(c connections.Connection, body []byte) {
			r := http.RequestOf(c)
			var err error
			switch r.Path() {
			case "/":
				err = c.Send("hello, goer", false)
			case "/echo":
				err = http.Respond(c, &http.Response{
					ContentType: "application/octet-stream",
					Header: []http.Field{
						{Name: "X-Method", Value: r.Method()},
						{Name: "X-Query", Value: r.Query("q")},
						{Name: "X-Cookie", Value: r.Cookie("sid")},
						{Name: "X-Trailer", Value: r.Trailer("X-Sum")},
						{Name: "X-Chunked", Value: strconv.FormatBool(r.Chunked())},
					},
					Body: body,
				})
			case "/close":
				err = http.Respond(c, &http.Response{Body: []byte("bye"), Close: true})
			default:
				err = http.Respond(c, &http.Response{Status: 404, Body: []byte("no " + r.Path())})
			}
			if err != nil {
				t.Errorf("answer: %v", err)
			}
		},
	}
}

func newClient(t testing.TB) *nethttp.Client {
	tr := &nethttp.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &nethttp.Client{Transport: tr, Timeout: ioTimeout}
}

// TestNetHTTPClient drives the server with Go's HTTP client over one
// keep-alive connection: GET, HEAD, POST with Content-Length, chunked POST
// with a trailer, 404, and a response that closes.
func TestNetHTTPClient(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.NewHttpProtocol(), 0, appHandler(t))
		client := newClient(t)
		base := "http://" + ts.addr
		var reused int
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			if i.Reused {
				reused++
			}
		}}
		do := func(method, path string, body io.Reader, hdr map[string]string, trailer nethttp.Header) (*nethttp.Response, string) {
			t.Helper()
			req, err := nethttp.NewRequest(method, base+path, body)
			if err != nil {
				t.Fatal(err)
			}
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			req.Trailer = trailer
			if trailer != nil {
				req.ContentLength = -1
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("%s %s: read body: %v", method, path, err)
			}
			return resp, string(b)
		}

		resp, body := do("GET", "/", nil, nil, nil)
		if resp.StatusCode != 200 || body != "hello, goer" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
			resp.Header.Get("Server") != "goes" || resp.Header.Get("Date") == "" || resp.ContentLength != 11 {
			t.Fatalf("GET /: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		resp, body = do("HEAD", "/", nil, nil, nil)
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != 11 {
			t.Fatalf("HEAD /: %d %q len %d", resp.StatusCode, body, resp.ContentLength)
		}
		resp, body = do("POST", "/echo?q=a+b%21", strings.NewReader("posted body"), map[string]string{"Cookie": "sid=s1; x=y"}, nil)
		if resp.StatusCode != 200 || body != "posted body" || resp.Header.Get("X-Method") != "POST" ||
			resp.Header.Get("X-Query") != "a b!" || resp.Header.Get("X-Cookie") != "s1" || resp.Header.Get("X-Chunked") != "false" {
			t.Fatalf("POST /echo: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		// A reader of unknown length makes the client send chunks; the
		// trailer is declared in advance and filled in by the body reader.
		trailer := nethttp.Header{"X-Sum": nil}
		payload := strings.Repeat("chunked data ", 1000)
		pr := &trailerReader{r: strings.NewReader(payload), trailer: trailer, key: "X-Sum", val: "sum-1"}
		resp, body = do("PUT", "/echo", pr, nil, trailer)
		if resp.StatusCode != 200 || body != payload || resp.Header.Get("X-Chunked") != "true" ||
			resp.Header.Get("X-Trailer") != "sum-1" || resp.Header.Get("X-Method") != "PUT" {
			t.Fatalf("chunked PUT /echo: %d len %d %v", resp.StatusCode, len(body), resp.Header)
		}
		resp, body = do("GET", "/nothing", nil, nil, nil)
		if resp.StatusCode != 404 || body != "no /nothing" {
			t.Fatalf("GET /nothing: %d %q", resp.StatusCode, body)
		}
		if reused != 4 {
			t.Fatalf("%d of 5 requests reused the connection, want 4", reused)
		}
		resp, body = do("GET", "/close", nil, nil, nil)
		if resp.StatusCode != 200 || body != "bye" || !resp.Close {
			t.Fatalf("GET /close: %d %q close=%v", resp.StatusCode, body, resp.Close)
		}
		resp, _ = do("GET", "/", nil, nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET / after close: %d", resp.StatusCode)
		}
		if st := ts.srv.Stats(); st.Accepted != 2 || st.Errors != 0 {
			t.Fatalf("stats %+v: want 2 connections and no errors", st)
		}
	})
}

// trailerReader sets a trailer value when its body is exhausted, as the
// net/http client expects.
type trailerReader struct {
	r        io.Reader
	trailer  nethttp.Header
	key, val string
}

func (tr *trailerReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	if err == io.EOF {
		tr.trailer.Set(tr.key, tr.val)
	}
	return n, err
}

// rawConn is a client socket with a deadline on every operation.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(ioTimeout))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (rc *rawConn) write(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.nc, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads one response (for a request with method).
func (rc *rawConn) response(method string) (*nethttp.Response, string) {
	rc.t.Helper()
	resp, err := nethttp.ReadResponse(rc.br, &nethttp.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read response body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// expectEOF checks that the server closed the connection.
func (rc *rawConn) expectEOF() {
	rc.t.Helper()
	if b, err := rc.br.ReadByte(); err == nil {
		rest, _ := rc.br.Peek(rc.br.Buffered())
		rc.t.Fatalf("connection still open: read %q%q", b, rest)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !testkit.IsReset(err) {
		rc.t.Fatalf("waiting for close: %v", err)
	}
}

// TestPipelinedRaw writes 16 GETs, a POST with a body, a chunked POST and
// a closing GET in one write and reads the answers in order.
func TestPipelinedRaw(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.New(), 0, appHandler(t))
		rc := dial(t, ts.addr)
		var b strings.Builder
		for i := 0; i < 16; i++ {
			fmt.Fprintf(&b, "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		b.WriteString("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
		b.WriteString("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;e=1\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n")
		b.WriteString("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b.WriteString("GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
		rc.write(b.String())
		for i := 0; i < 16; i++ {
			resp, body := rc.response("GET")
			if want := fmt.Sprintf("no /p%d", i); resp.StatusCode != 404 || body != want {
				t.Fatalf("response %d: %d %q, want 404 %q", i, resp.StatusCode, body, want)
			}
		}
		if resp, body := rc.response("POST"); body != "body" || resp.Header.Get("X-Chunked") != "false" {
			t.Fatalf("POST: %q %v", body, resp.Header)
		}
		if resp, body := rc.response("POST"); body != "abcde" || resp.Header.Get("X-Trailer") != "9" {
			t.Fatalf("chunked POST: %q %v", body, resp.Header)
		}
		if resp, body := rc.response("GET"); body != "hello, goer" || !resp.Close {
			t.Fatalf("closing GET: %q close=%v", body, resp.Close)
		}
		rc.expectEOF()
	})
}

// TestMalformedOverSocket checks that refused requests get their status,
// Connection: close, and a closed connection, without the server waiting
// for bytes it does not need.
func TestMalformedOverSocket(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		status int
	}{
		{name: "garbage request line", in: "HELLO THERE\r\n\r\n", status: 400},
		{name: "cl and te", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "differing cl", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: 400},
		{name: "te not chunked", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", status: 400},
		{name: "unknown coding", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br, chunked\r\n\r\n", status: 501},
		{name: "header over limit", in: "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("z", 9<<10), status: 431},
		// Only the head is sent: the 413 must come without the body.
		{name: "body over limit", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n", status: 413},
		{name: "chunk over limit", in: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n", status: 413},
		{name: "http/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 505},
	}
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.New(), 1<<20, appHandler(t))
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				rc := dial(t, ts.addr)
				rc.write(tc.in)
				resp, _ := rc.response("GET")
				if resp.StatusCode != tc.status || !resp.Close {
					t.Fatalf("status %d close=%v, want %d and close", resp.StatusCode, resp.Close, tc.status)
				}
				rc.expectEOF()
			})
		}
		// The server still serves.
		rc := dial(t, ts.addr)
		rc.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "hello, goer" {
			t.Fatalf("after bad input: %d %q", resp.StatusCode, body)
		}
	})
}

// TestExpectContinueOverSocket sends the body only after 100 Continue.
func TestExpectContinueOverSocket(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.New(), 0, appHandler(t))
		rc := dial(t, ts.addr)
		rc.write("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n")
		line, err := rc.br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("interim response %q, %v", line, err)
		}
		if blank, err := rc.br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("after 100 Continue: %q, %v", blank, err)
		}
		rc.write("payload")
		if resp, body := rc.response("POST"); resp.StatusCode != 200 || body != "payload" {
			t.Fatalf("final response %d %q", resp.StatusCode, body)
		}
	})
}

// TestDrainingClosesKeepAlive: once the server drains, the next response
// on an open keep-alive connection says Connection: close and the
// connection closes after it.
func TestDrainingClosesKeepAlive(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, http.New(), 0, appHandler(t))
		rc := dial(t, ts.addr)
		rc.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, _ := rc.response("GET"); resp.Close {
			t.Fatal("first response closes")
		}
		ts.srv.Drain()
		rc.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.response("GET"); !resp.Close || body != "hello, goer" {
			t.Fatalf("response while draining: close=%v %q", resp.Close, body)
		}
		rc.expectEOF()
	})
}

// TestAsyncAnswers answers from another goroutine, pausing reading until
// the answer is sent, as the package documentation advises; pipelined
// answers stay in order.
func TestAsyncAnswers(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		ts := serve(t, e, http.New(), 0, connections.Handler{
			OnMessage: func(c connections.Connection, _ []byte) {
				path := http.RequestOf(c).Path() // copy what the answer needs now
				c.PauseRecv()
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := http.Respond(c, &http.Response{Body: []byte("async " + path)}); err != nil {
						t.Errorf("Respond: %v", err)
					}
					c.ResumeRecv()
				}()
			},
		})
		rc := dial(t, ts.addr)
		var b strings.Builder
		for i := 0; i < 8; i++ {
			fmt.Fprintf(&b, "GET /a%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		rc.write(b.String())
		for i := 0; i < 8; i++ {
			if _, body := rc.response("GET"); body != fmt.Sprintf("async /a%d", i) {
				t.Fatalf("answer %d: %q", i, body)
			}
		}
	})
}

// TestCurl serves the seed's program shape and asks curl, the client of
// the acceptance test. curl must be installed (the CI image has
// it).
func TestCurl(t *testing.T) {
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.NewHttpProtocol(), 0, connections.Handler{
		OnMessage: func(c connections.Connection, data []byte) {
			if http.RequestOf(c).Path() == "/echo" {
				http.Respond(c, &http.Response{Body: data})
				return
			}
			c.Send("hello, goer", false)
		},
	})
	run := func(args ...string) string { t.Helper(); return curl(t, args...) }
	base := "http://" + ts.addr
	out := run("-i", base+"/")
	if !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(out, "\r\n\r\nhello, goer") {
		t.Fatalf("curl -i /: %q", out)
	}
	// Two URLs on one connection (keep-alive), then HTTP/1.0.
	if out := run(base+"/", base+"/"); out != "hello, goerhello, goer" {
		t.Fatalf("curl keep-alive: %q", out)
	}
	if out := run("--http1.0", "-i", base+"/"); !strings.Contains(out, "Connection: close\r\n") || !strings.HasSuffix(out, "hello, goer") {
		t.Fatalf("curl --http1.0: %q", out)
	}
	// A 64 KiB upload makes curl send Expect: 100-continue.
	payload := strings.Repeat("0123456789abcdef", 4<<10)
	if got := curlStdin(t, payload, "--data-binary", "@-", base+"/echo"); got != payload {
		t.Fatalf("curl upload: got %d bytes", len(got))
	}
	// Chunked upload.
	if got := curlStdin(t, payload, "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", base+"/echo"); got != payload {
		t.Fatalf("curl chunked upload: got %d bytes", len(got))
	}
}

// curl runs curl with args (silent, unbuffered, errors shown, 10 s at
// most, no proxy) and returns what it printed; a failure fails t.
func curl(t testing.TB, args ...string) string {
	t.Helper()
	return curlStdin(t, "", args...)
}

// curlStdin is curl with stdin as curl's standard input.
func curlStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is required by this test and is not in PATH (the CI image installs it): %v", err)
	}
	cmd := exec.Command(bin, append([]string{"-sSN", "--max-time", "10", "--noproxy", "*"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %q: %v: %s", args, err, stderr.String())
	}
	return string(out)
}
