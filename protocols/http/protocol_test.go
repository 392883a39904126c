package http

import (
	"errors"
	"strings"
	"testing"
)

func TestPipelining(t *testing.T) {
	in := "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n6\r\n, worl\r\n1\r\nd\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n" +
		"\r\nGET /4?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
	p := New()
	// Fed whole, one byte at a time, and in every two-way split.
	splits := [][]string{{in}}
	var bytewise []string
	for i := range in {
		bytewise = append(bytewise, in[i:i+1])
	}
	splits = append(splits, bytewise)
	for i := 1; i < len(in); i++ {
		splits = append(splits, []string{in[:i], in[i:]})
	}
	var want []string
	for _, reads := range splits {
		var got []string
		rt := &runtime{p: p, c: newTestConn(p)}
		rt.onMessage = func(r *Request, body []byte) {
			got = append(got, r.Method()+" "+r.Path()+" "+string(body)+" "+r.Trailer("x-sum"))
			rt.c.SendBytes(body, false)
		}
		for _, rd := range reads {
			if err := rt.read(t, []byte(rd)); err != nil {
				t.Fatalf("reads %q: %v", reads, err)
			}
		}
		if want == nil {
			want = got
			if s := strings.Join(got, "|"); s != "GET /1  |POST /2 hello |POST /3 hello, world 42|GET /4  " {
				t.Fatalf("delivered %q", s)
			}
			if n := strings.Count(string(rt.c.out), "HTTP/1.1 200 OK\r\n"); n != 4 {
				t.Fatalf("%d responses in %q", n, rt.c.out)
			}
		} else if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("reads %q delivered %q, want %q", reads, got, want)
		}
		if len(rt.buf) != 0 {
			t.Fatalf("reads %q left %q", reads, rt.buf)
		}
	}
}

// respond drives one exchange and returns the response bytes and whether
// the protocol asked to close.
func exchange(t *testing.T, p *Protocol, c *testConn, in string, answer func(c *testConn, r *Request)) (string, bool) {
	t.Helper()
	rt := &runtime{p: p, c: c}
	rt.onMessage = func(r *Request, _ []byte) { answer(c, r) }
	c.out, c.closeAfter, c.closed = nil, false, false
	if err := rt.read(t, []byte(in)); err != nil {
		t.Fatal(err)
	}
	return string(c.out), c.closeAfter || c.closed
}

func TestConnectionHandling(t *testing.T) {
	send := func(c *testConn, _ *Request) { c.SendBytes([]byte("hello, goer"), false) }
	tests := []struct {
		name      string
		in        string
		draining  bool
		close     bool
		responses int
	}{
		{name: "http/1.1 keeps", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", responses: 1},
		{name: "http/1.1 close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", close: true, responses: 1},
		{name: "http/1.1 close token", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", close: true, responses: 1},
		{name: "http/1.0 closes", in: "GET / HTTP/1.0\r\n\r\n", close: true, responses: 1},
		{name: "http/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", responses: 1},
		{name: "draining closes", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", draining: true, close: true, responses: 1},
		{name: "pipelined after close are dropped",
			in:    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
			close: true, responses: 1},
		{name: "garbage after close is dropped",
			in:    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n\x00\x01 not http",
			close: true, responses: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			c := newTestConn(p)
			c.draining = tc.draining
			out, closed := exchange(t, p, c, tc.in, send)
			if closed != tc.close {
				t.Errorf("closed = %v, want %v", closed, tc.close)
			}
			if n := strings.Count(out, "HTTP/1.1 200 OK"); n != tc.responses {
				t.Errorf("%d responses, want %d: %q", n, tc.responses, out)
			}
			wantConn := "\r\nConnection: keep-alive\r\n"
			if tc.close {
				wantConn = "\r\nConnection: close\r\n"
			}
			if !strings.Contains(out, wantConn) || !strings.HasSuffix(out, "\r\n\r\nhello, goer") {
				t.Errorf("response %q lacks %q or the body", out, wantConn)
			}
		})
	}
}

func TestEncodeDefault(t *testing.T) {
	p := NewHttpProtocol()
	c := newTestConn(p)
	out, _ := exchange(t, p, c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", func(c *testConn, _ *Request) {
		c.SendBytes([]byte("hello, goer"), false)
	})
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok || body != "hello, goer" {
		t.Fatalf("response %q", out)
	}
	lines := strings.Split(head, "\r\n")
	if lines[0] != "HTTP/1.1 200 OK" {
		t.Fatalf("status line %q", lines[0])
	}
	want := map[string]bool{
		"Server: goes": false, "Content-Type: text/html; charset=utf-8": false,
		"Content-Length: 11": false, "Connection: keep-alive": false,
	}
	for _, l := range lines[1:] {
		if _, ok := want[l]; ok {
			want[l] = true
		} else if !strings.HasPrefix(l, "Date: ") || !strings.HasSuffix(l, " GMT") || len(l) != len("Date: ")+29 {
			t.Errorf("unexpected field %q", l)
		}
	}
	for l, seen := range want {
		if !seen {
			t.Errorf("missing %q in %q", l, head)
		}
	}

	// Encode without any request (a Send from OnConnect) still works.
	c2 := newTestConn(p)
	b, err := p.Encode(c2, nil, []byte("x"))
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(string(b), "\r\n\r\nx") {
		t.Fatalf("Encode without a request: %q, %v", b, err)
	}
}

func TestHead(t *testing.T) {
	p := New()
	c := newTestConn(p)
	out, _ := exchange(t, p, c, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", func(c *testConn, _ *Request) {
		c.SendBytes([]byte("body!"), false)
	})
	first, second, _ := strings.Cut(out, "\r\n\r\n")
	if !strings.Contains(first, "Content-Length: 5") || !strings.HasPrefix(second, "HTTP/1.1 200 OK") ||
		!strings.HasSuffix(second, "\r\n\r\nbody!") {
		t.Fatalf("HEAD then GET answered %q", out)
	}
	// The same through Respond.
	c = newTestConn(p)
	out, _ = exchange(t, p, c, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", func(c *testConn, _ *Request) {
		if err := Respond(c, &Response{Status: 404, Body: []byte("gone")}); err != nil {
			t.Fatal(err)
		}
	})
	if !strings.HasPrefix(out, "HTTP/1.1 404 Not Found\r\n") || !strings.HasSuffix(out, "Content-Length: 4\r\nConnection: keep-alive\r\n\r\n") {
		t.Fatalf("HEAD via Respond answered %q", out)
	}
}

func TestRespond(t *testing.T) {
	p := &Protocol{ServerName: "test", ContentType: "application/json"}
	tests := []struct {
		name  string
		resp  Response
		in    string
		want  []string // substrings
		not   []string
		close bool
	}{
		{name: "zero value", resp: Response{}, want: []string{"HTTP/1.1 200 OK\r\n", "Server: test\r\n",
			"Content-Type: application/json\r\n", "Content-Length: 0\r\n", "Connection: keep-alive\r\n\r\n"}},
		{name: "404 with fields", resp: Response{Status: 404, ContentType: "text/plain",
			Header: []Field{{"X-A", "1"}, {"Set-Cookie", "a=b; Path=/"}}, Body: []byte("nope")},
			want: []string{"HTTP/1.1 404 Not Found\r\n", "Content-Type: text/plain\r\n", "X-A: 1\r\nSet-Cookie: a=b; Path=/\r\n",
				"Content-Length: 4\r\n", "\r\n\r\nnope"}},
		{name: "own server and type", resp: Response{Header: []Field{{"server", "mine"}, {"Content-Type", "image/png"}}},
			want: []string{"server: mine\r\n", "Content-Type: image/png\r\n"}, not: []string{"Server: test", "application/json"}},
		{name: "204 no body", resp: Response{Status: 204, Body: []byte("dropped")},
			want: []string{"HTTP/1.1 204 No Content\r\n"}, not: []string{"Content-Length", "dropped", "Content-Type"}},
		{name: "unknown status", resp: Response{Status: 599}, want: []string{"HTTP/1.1 599 Unknown\r\n"}},
		{name: "close", resp: Response{Close: true}, want: []string{"Connection: close\r\n"}, close: true},
		{name: "request close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			want: []string{"Connection: close\r\n"}, close: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if in == "" {
				in = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
			}
			c := newTestConn(p)
			out, closed := exchange(t, p, c, in, func(c *testConn, _ *Request) {
				if err := Respond(c, &tc.resp); err != nil {
					t.Fatal(err)
				}
			})
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("response %q lacks %q", out, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("response %q has %q", out, w)
				}
			}
			if closed != tc.close {
				t.Errorf("closed = %v, want %v", closed, tc.close)
			}
		})
	}
}

func TestRespondRefuses(t *testing.T) {
	p := New()
	bad := []Response{
		{Status: 100}, {Status: 1000}, {Status: -1},
		{Header: []Field{{"Content-Length", "3"}}},
		{Header: []Field{{"transfer-encoding", "chunked"}}},
		{Header: []Field{{"Connection", "upgrade"}}},
		{Header: []Field{{"X-Split", "a\r\nInjected: yes"}}},
		{Header: []Field{{"Bad Name", "x"}}},
		{Header: []Field{{"", "x"}}},
		{ContentType: "text/html\r\nX: y"},
	}
	for _, resp := range bad {
		c := newTestConn(p)
		rt := &runtime{p: p, c: c}
		var err error
		rt.onMessage = func(*Request, []byte) { err = Respond(c, &resp) }
		if rerr := rt.read(t, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); rerr != nil {
			t.Fatal(rerr)
		}
		if !errors.Is(err, ErrBadResponse) || len(c.out) != 0 {
			t.Errorf("Respond(%+v) = %v, wrote %q; want ErrBadResponse and nothing", resp, err, c.out)
		}
	}
	if err := Respond(newTestConn(p), &Response{}); !errors.Is(err, ErrNoRequest) {
		t.Errorf("Respond before any request = %v, want ErrNoRequest", err)
	}
}

// TestAsyncAnswersInOrder answers pipelined requests after they were all
// read: each answer takes the metadata of the request it answers.
func TestAsyncAnswersInOrder(t *testing.T) {
	p := New()
	c := newTestConn(p)
	rt := &runtime{p: p, c: c}
	n := 0
	rt.onMessage = func(*Request, []byte) { n++ }
	in := "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	if err := rt.read(t, []byte(in)); err != nil || n != 3 {
		t.Fatalf("read: %v, %d delivered", err, n)
	}
	for _, body := range []string{"one", "two", "three"} {
		c.SendBytes([]byte(body), false)
	}
	parts := strings.Split(string(c.out), "HTTP/1.1 200 OK\r\n")
	if len(parts) != 4 || !strings.HasSuffix(parts[1], "keep-alive\r\n\r\none") ||
		!strings.HasSuffix(parts[2], "Content-Length: 3\r\nConnection: keep-alive\r\n\r\n") ||
		!strings.HasSuffix(parts[3], "Connection: close\r\n\r\nthree") || !c.closeAfter {
		t.Fatalf("answers %q (closeAfter %v)", c.out, c.closeAfter)
	}
}

func TestExpectContinue(t *testing.T) {
	p := New()
	c := newTestConn(p)
	rt := &runtime{p: p, c: c}
	var got string
	rt.onMessage = func(_ *Request, body []byte) { got = string(body) }
	head := "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
	if err := rt.read(t, []byte(head)); err != nil {
		t.Fatal(err)
	}
	if string(c.raw) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("after the head: raw %q", c.raw)
	}
	if err := rt.read(t, []byte("hel")); err != nil {
		t.Fatal(err)
	}
	if err := rt.read(t, []byte("lo")); err != nil || got != "hello" {
		t.Fatalf("body %q, %v", got, err)
	}
	if string(c.raw) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("100 Continue sent more than once: %q", c.raw)
	}
	// Body sent along with the head: no 100.
	c2 := newTestConn(p)
	rt = &runtime{p: p, c: c2}
	if err := rt.read(t, []byte(head+"hello")); err != nil || len(c2.raw) != 0 {
		t.Fatalf("head with body: %v, raw %q", err, c2.raw)
	}
	// Too large: 413 instead of 100.
	c3 := newTestConn(p)
	c3.max = 100
	rt = &runtime{p: p, c: c3}
	err := rt.read(t, []byte("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 500\r\n\r\n"))
	if statusOf(t, err) != 413 || len(c3.raw) != 0 {
		t.Fatalf("too large with expect: %v, raw %q", err, c3.raw)
	}
	// HTTP/1.0 expectations are ignored.
	c4 := newTestConn(p)
	rt = &runtime{p: p, c: c4}
	if err := rt.read(t, []byte("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")); err != nil || len(c4.raw) != 0 {
		t.Fatalf("http/1.0 expect: %v, raw %q", err, c4.raw)
	}
}

func TestDecodeWithoutInput(t *testing.T) {
	p := New()
	c := newTestConn(p)
	pkt := []byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	body, err := p.Decode(c, pkt)
	if err != nil || string(body) != "abc" {
		t.Fatalf("Decode = %q, %v", body, err)
	}
	_, err = p.Decode(c, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET"))
	if statusOf(t, err) != 400 {
		t.Fatalf("Decode of more than one request: %v", err)
	}
}

func TestRequestOf(t *testing.T) {
	p := New()
	c := newTestConn(p)
	if RequestOf(c) != nil {
		t.Fatal("RequestOf before any request is not nil")
	}
	rt := &runtime{p: p, c: c}
	var host, ua, body string
	rt.onMessage = func(_ *Request, b []byte) {
		r := RequestOf(c)
		host, ua, body = r.Host(), r.Header("user-agent"), string(r.Body())
	}
	if err := rt.read(t, []byte("PUT /x HTTP/1.1\r\nHost: h\r\nUser-Agent: t/1\r\nContent-Length: 2\r\n\r\nok")); err != nil {
		t.Fatal(err)
	}
	if host != "h" || ua != "t/1" || body != "ok" {
		t.Fatalf("host %q ua %q body %q", host, ua, body)
	}
}

// TestDrainingAfterRead: the worker starts draining between reading a
// request and answering it; the answer still closes.
func TestDrainingAfterRead(t *testing.T) {
	p := New()
	for _, respond := range []bool{false, true} {
		c := newTestConn(p)
		out, closed := exchange(t, p, c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", func(c *testConn, r *Request) {
			if !r.KeepAlive() {
				t.Fatal("request read before draining is not keep-alive")
			}
			c.draining = true
			if respond {
				Respond(c, &Response{Body: []byte("x")})
			} else {
				c.SendBytes([]byte("x"), false)
			}
		})
		if !closed || !strings.Contains(out, "\r\nConnection: close\r\n") {
			t.Fatalf("respond=%v: closed=%v, %q", respond, closed, out)
		}
	}
}
