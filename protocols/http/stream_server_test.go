//go:build unix

package http_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// streamPieces are the pieces /stream writes: their lengths, 1, 10, 255
// and 4096, are 1, a, ff and 1000 in hex; an empty write among them sends
// nothing.
var streamPieces = []string{
	"a", "", strings.Repeat("b", 10), strings.Repeat("c", 255), strings.Repeat("d", 4096),
}

// streamBody is the de-chunked body of /stream.
var streamBody = strings.Join(streamPieces, "")

// streamWire is the exact chunked body of /stream.
var streamWire = "1\r\na\r\n" + "a\r\n" + streamPieces[2] + "\r\n" + "ff\r\n" + streamPieces[3] + "\r\n" +
	"1000\r\n" + streamPieces[4] + "\r\n" + "0\r\nX-Sum: 4362\r\n\r\n"

// sseEvents are the events of /sse, and sseWire the body a client reads.
var (
	sseEvents = []http.Event{
		{ID: "1", Data: "hello", Retry: 100 * time.Millisecond},
		{Event: "multi", Data: "line one\nline two"},
		{ID: "3", Data: "über ✓"},
	}
	sseWire = "id: 1\nretry: 100\ndata: hello\n\n" + "event: multi\ndata: line one\ndata: line two\n\n" +
		"id: 3\ndata: über ✓\n\n" + ": bye\n"
)

// streamApp serves streamed responses, produced by goroutines as a real
// application would:
//
//	/stream  streamPieces, then End with the trailer X-Sum
//	/sse     sseEvents and a comment
//	/hold    a stream whose writer is handed to the test on held
//	/        "hello, goer" (Send)
type streamApp struct {
	t    testing.TB
	wg   sync.WaitGroup
	held chan *http.StreamWriter
}

func newStreamApp(t testing.TB) *streamApp {
	a := &streamApp{t: t, held: make(chan *http.StreamWriter, 4)}
	t.Cleanup(a.wg.Wait)
	return a
}

func (a *streamApp) handler() connections.Handler {
	return connections.Handler{OnMessage: a.onMessage}
}

func (a *streamApp) onMessage(c connections.Connection, _ []byte) {
	t := a.t
	switch http.RequestOf(c).Path() {
	case "/stream":
		w, err := http.Stream(c, &http.Response{ContentType: "text/plain", Header: []http.Field{{Name: "Trailer", Value: "X-Sum"}}})
		if err != nil {
			t.Errorf("Stream: %v", err)
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			n := 0
			for _, p := range streamPieces {
				if err := w.Write([]byte(p)); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				n += len(p)
			}
			if err := w.End(http.Field{Name: "X-Sum", Value: fmt.Sprint(n)}); err != nil {
				t.Errorf("End: %v", err)
			}
		}()
	case "/sse":
		s, err := http.SSE(c)
		if err != nil {
			t.Errorf("SSE: %v", err)
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for _, ev := range sseEvents {
				if err := s.Send(ev); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
			if err := s.Comment("bye"); err != nil {
				t.Errorf("Comment: %v", err)
			}
			if err := s.End(); err != nil {
				t.Errorf("End: %v", err)
			}
		}()
	case "/hold":
		w, err := http.Stream(c, &http.Response{Body: []byte("start")})
		if err != nil {
			t.Errorf("Stream: %v", err)
			return
		}
		a.held <- w
	default:
		if err := c.Send("hello, goer", false); err != nil {
			t.Errorf("Send: %v", err)
		}
	}
}

// takeHeld returns the writer of the next /hold request.
func (a *streamApp) takeHeld(t testing.TB) *http.StreamWriter {
	t.Helper()
	select {
	case w := <-a.held:
		return w
	case <-time.After(ioTimeout):
		t.Fatal("no /hold request within the deadline")
		return nil
	}
}

// readHead reads a response head and returns it, CRLFs included.
func (rc *rawConn) readHead() string {
	rc.t.Helper()
	var b strings.Builder
	for {
		line, err := rc.br.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("reading a head after %q: %v", b.String(), err)
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String()
		}
	}
}

// readN reads exactly n bytes.
func (rc *rawConn) readN(n int) string {
	rc.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc.br, b); err != nil {
		rc.t.Fatalf("reading %d bytes: %v", n, err)
	}
	return string(b)
}

// TestStreamRawSocket checks the wire bytes over a socket: a streamed
// response with a pipelined GET behind it (answered after the stream, in
// order), HEAD, an event stream, and HTTP/1.0.
func TestStreamRawSocket(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		app := newStreamApp(t)
		ts := serve(t, e, http.New(), 0, app.handler())
		rc := dial(t, ts.addr)
		rc.write("GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n" +
			"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /sse HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
		head := rc.readHead()
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "\r\nTransfer-Encoding: chunked\r\n") ||
			!strings.Contains(head, "\r\nTrailer: X-Sum\r\n") || !strings.Contains(head, "\r\nConnection: keep-alive\r\n") ||
			strings.Contains(head, "Content-Length") {
			t.Fatalf("stream head %q", head)
		}
		if got := rc.readN(len(streamWire)); got != streamWire {
			t.Fatalf("stream body\n%q\nwant\n%q", got, streamWire)
		}
		if resp, body := rc.response("GET"); body != "hello, goer" || resp.Close {
			t.Fatalf("GET after the stream: %q close=%v", body, resp.Close)
		}
		head = rc.readHead()
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "\r\nTransfer-Encoding: chunked\r\n") {
			t.Fatalf("HEAD head %q", head)
		}
		// No body for HEAD: the next bytes are the event stream's head.
		head = rc.readHead()
		if !strings.Contains(head, "\r\nContent-Type: text/event-stream\r\n") || !strings.Contains(head, "\r\nCache-Control: no-cache\r\n") ||
			!strings.Contains(head, "\r\nTransfer-Encoding: chunked\r\n") {
			t.Fatalf("event stream head %q", head)
		}
		var want strings.Builder
		for _, ev := range []string{"id: 1\nretry: 100\ndata: hello\n\n", "event: multi\ndata: line one\ndata: line two\n\n", "id: 3\ndata: über ✓\n\n", ": bye\n"} {
			fmt.Fprintf(&want, "%x\r\n%s\r\n", len(ev), ev)
		}
		want.WriteString("0\r\n\r\n")
		if got := rc.readN(want.Len()); got != want.String() {
			t.Fatalf("event stream body\n%q\nwant\n%q", got, want.String())
		}
		if _, body := rc.response("GET"); body != "hello, goer" {
			t.Fatalf("GET after the event stream: %q", body)
		}

		// HTTP/1.0: the body as is, ended by the close; pipelined input
		// after it is dropped.
		rc = dial(t, ts.addr)
		rc.write("GET /stream HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n")
		head = rc.readHead()
		if !strings.Contains(head, "\r\nConnection: close\r\n") || strings.Contains(head, "Transfer-Encoding") || strings.Contains(head, "Content-Length") {
			t.Fatalf("HTTP/1.0 head %q", head)
		}
		rest, err := io.ReadAll(rc.br)
		if err != nil && !testkit.IsReset(err) {
			t.Fatal(err)
		}
		if string(rest) != streamBody {
			t.Fatalf("HTTP/1.0 body %q, want %q", rest, streamBody)
		}
	})
}

// TestStreamNetHTTPClient reads streamed bodies and the trailer with Go's
// client, on one keep-alive connection.
func TestStreamNetHTTPClient(t *testing.T) {
	app := newStreamApp(t)
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, app.handler())
	client := newClient(t)
	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	get := func(method, path string) (*nethttp.Response, string) {
		t.Helper()
		req, err := nethttp.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, "http://"+ts.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, string(b)
	}
	for round := 0; round < 2; round++ {
		resp, body := get("GET", "/stream")
		if resp.StatusCode != 200 || body != streamBody || resp.ContentLength != -1 ||
			len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Trailer.Get("X-Sum") != "4362" {
			t.Fatalf("GET /stream: %d len %d te %v trailer %v", resp.StatusCode, len(body), resp.TransferEncoding, resp.Trailer)
		}
		if resp, body = get("HEAD", "/stream"); resp.StatusCode != 200 || body != "" {
			t.Fatalf("HEAD /stream: %d %q", resp.StatusCode, body)
		}
		resp, body = get("GET", "/sse")
		if resp.Header.Get("Content-Type") != "text/event-stream" || body != sseWire {
			t.Fatalf("GET /sse: %v %q", resp.Header, body)
		}
		if _, body = get("GET", "/"); body != "hello, goer" {
			t.Fatalf("GET /: %q", body)
		}
	}
	if reused != 7 {
		t.Fatalf("%d of 8 requests reused the connection, want 7", reused)
	}
}

// TestStreamCurl reads streamed responses with curl, over HTTP/1.1 and
// HTTP/1.0.
func TestStreamCurl(t *testing.T) {
	app := newStreamApp(t)
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, app.handler())
	run := func(args ...string) string { t.Helper(); return curl(t, args...) }
	base := "http://" + ts.addr
	// curl -i prints the trailer after the body.
	if out := run("--http1.1", "-i", base+"/stream"); !strings.Contains(out, "\r\nTransfer-Encoding: chunked\r\n") ||
		!strings.HasSuffix(out, "\r\n\r\n"+streamBody+"X-Sum: 4362\r\n") {
		t.Fatalf("curl --http1.1 /stream: %q", out)
	}
	if out := run("--http1.0", "-i", base+"/stream"); !strings.Contains(out, "\r\nConnection: close\r\n") ||
		strings.Contains(out, "Transfer-Encoding") || !strings.HasSuffix(out, "\r\n\r\n"+streamBody) {
		t.Fatalf("curl --http1.0 /stream: %q", out)
	}
	// Two URLs on one connection: the stream, then a plain answer.
	if out := run("--http1.1", base+"/sse", base+"/"); out != sseWire+"hello, goer" {
		t.Fatalf("curl /sse /: %q", out)
	}
	if out := run("--http1.1", "-I", base+"/stream"); !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") || !strings.Contains(out, "Transfer-Encoding: chunked") {
		t.Fatalf("curl -I /stream: %q", out)
	}
}

// TestStreamErrors: while a stream is open other answers are refused;
// after End writes fail with ErrStreamEnded; a peer that leaves
// mid-stream makes Write fail while the server goes on serving others.
func TestStreamErrors(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		app := newStreamApp(t)
		ts := serve(t, e, http.New(), 0, app.handler())

		rc := dial(t, ts.addr)
		rc.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		w := app.takeHeld(t)
		if err := w.Write([]byte("more")); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if err := w.Write([]byte("late")); !errors.Is(err, http.ErrStreamEnded) {
			t.Fatalf("Write after End: %v", err)
		}
		if err := w.End(); !errors.Is(err, http.ErrStreamEnded) {
			t.Fatalf("End after End: %v", err)
		}
		if resp, body := rc.response("GET"); body != "startmore" || resp.Close {
			t.Fatalf("held stream: %q close=%v", body, resp.Close)
		}

		// The peer leaves mid-stream.
		rc.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		w = app.takeHeld(t)
		rc.readHead()
		rc.nc.Close()
		piece := bytes.Repeat([]byte("z"), 1024)
		var err error
		testkit.Eventually(t, testkit.Wait, time.Millisecond, "Write to fail after the peer left", func() bool {
			err = w.Write(piece)
			return err != nil && !errors.Is(err, connections.ErrSendBufferFull)
		})
		if !errors.Is(err, connections.ErrClosed) {
			t.Fatalf("Write to a gone peer: %v, want connections.ErrClosed", err)
		}
		if err := w.End(); !errors.Is(err, connections.ErrClosed) {
			t.Fatalf("End to a gone peer: %v", err)
		}
		rc = dial(t, ts.addr)
		rc.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, body := rc.response("GET"); body != "hello, goer" {
			t.Fatalf("after the peer left: %q", body)
		}
	})
}

// TestStreamDuringDrain: a stream begun before the worker drains goes on
// until End; the connection then closes (the next request would have
// been refused a keep-alive anyway).
func TestStreamDuringDrain(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		app := newStreamApp(t)
		ts := serve(t, e, http.New(), 0, app.handler())
		rc := dial(t, ts.addr)
		rc.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		w := app.takeHeld(t)
		if head := rc.readHead(); !strings.Contains(head, "\r\nConnection: keep-alive\r\n") {
			t.Fatalf("head %q", head)
		}
		ts.srv.Drain()
		for i := 0; i < 3; i++ {
			if err := w.Write(fmt.Appendf(nil, "draining %d;", i)); err != nil {
				t.Fatalf("Write during drain: %v", err)
			}
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		want := "5\r\nstart\r\n" + "b\r\ndraining 0;\r\n" + "b\r\ndraining 1;\r\n" + "b\r\ndraining 2;\r\n" + "0\r\n\r\n"
		if got := rc.readN(len(want)); got != want {
			t.Fatalf("body during drain %q, want %q", got, want)
		}
		rc.expectEOF()
		select {
		case <-ts.srv.Done():
		case <-time.After(ioTimeout):
			t.Fatal("the drained server kept a connection")
		}
	})
}

// serveConfig starts a server with cfg (Engine, Loops, Logger filled in)
// on ln.
func serveConfig(t testing.TB, e testkit.Engine, ln net.Listener, cfg connections.Config) *testServer {
	t.Helper()
	cfg.Engine, cfg.Loops, cfg.CallbackGoroutines = e.Name, 1, e.Pool
	cfg.Logger = testkit.Logger(t)
	srv := connections.NewServer(cfg)
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

// TestStreamBackpressure: a producer faster than its client fills the
// send buffer; Write then fails with ErrSendBufferFull having dropped the
// piece whole, and the producer writes it again after OnBufferDrain. The
// client gets every piece once, in order, in a valid chunked body.
func TestStreamBackpressure(t *testing.T) {
	const pieces, pieceLen = 512, 1024
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		drained := make(chan struct{}, 1)
		app := newStreamApp(t)
		lc := net.ListenConfig{Control: sockBuf(syscall.SO_SNDBUF, 16<<10)}
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		h := app.handler()
		h.OnBufferDrain = func(connections.Connection) {
			select {
			case drained <- struct{}{}:
			default:
			}
		}
		ts := serveConfig(t, e, ln, connections.Config{Protocol: http.New(), MaxSendBufferSize: 32 << 10, Handler: h})
		d := net.Dialer{Control: sockBuf(syscall.SO_RCVBUF, 16<<10), Timeout: ioTimeout}
		nc, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(ioTimeout))
		rc := &rawConn{t: t, nc: nc, br: bufioReader(nc)}
		rc.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		w := app.takeHeld(t)

		sawFull := make(chan struct{})
		produced := make(chan error, 1)
		var want bytes.Buffer
		want.WriteString("start")
		for i := 0; i < pieces; i++ {
			want.Write(bytes.Repeat([]byte{byte('A' + i%26)}, pieceLen))
		}
		go func() {
			full := 0
			// Pieces 0..pieces-1, then End (index pieces): each is tried
			// again after OnBufferDrain when the buffer is full.
			for i := 0; i <= pieces; {
				var err error
				if i < pieces {
					err = w.Write(bytes.Repeat([]byte{byte('A' + i%26)}, pieceLen))
				} else {
					err = w.End()
				}
				switch {
				case err == nil:
					i++
				case errors.Is(err, connections.ErrSendBufferFull):
					if full++; full == 1 {
						close(sawFull)
					}
					select {
					case <-drained:
					case <-time.After(ioTimeout):
						produced <- fmt.Errorf("no OnBufferDrain within the deadline at piece %d", i)
						return
					}
				default:
					produced <- err
					return
				}
			}
			if full == 0 {
				close(sawFull)
				produced <- errors.New("the send buffer never filled")
				return
			}
			produced <- nil
		}()
		select {
		case <-sawFull:
		case <-time.After(ioTimeout):
			t.Fatal("the producer neither filled the buffer nor finished")
		}
		resp, body := rc.response("GET")
		if err := <-produced; err != nil {
			t.Fatalf("producer: %v", err)
		}
		if resp.StatusCode != 200 || body != want.String() {
			t.Fatalf("body of %d bytes, want %d; equal prefix %d", len(body), want.Len(), commonPrefix(body, want.String()))
		}
	})
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestStreamConcurrentWriters: pieces written by several goroutines at
// once arrive whole (one chunk each, never interleaved), each once.
func TestStreamConcurrentWriters(t *testing.T) {
	const writers, each = 4, 50
	app := newStreamApp(t)
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, app.handler())
	rc := dial(t, ts.addr)
	rc.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
	w := app.takeHeld(t)
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := w.Write(fmt.Appendf(nil, "<%d-%d%s>", g, i, strings.Repeat(".", i))); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	_, body := rc.response("GET")
	body, ok := strings.CutPrefix(body, "start")
	if !ok {
		t.Fatalf("body %q", body)
	}
	seen := map[string]bool{}
	for _, tok := range strings.SplitAfter(body, ">") {
		if tok == "" {
			continue
		}
		var g, i int
		if _, err := fmt.Sscanf(tok, "<%d-%d", &g, &i); err != nil || tok != fmt.Sprintf("<%d-%d%s>", g, i, strings.Repeat(".", i)) || seen[tok] {
			t.Fatalf("piece %q torn or repeated (%v)", tok, err)
		}
		seen[tok] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d pieces, want %d", len(seen), writers*each)
	}
}
