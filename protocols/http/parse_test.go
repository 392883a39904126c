package http

import (
	"errors"
	"strings"
	"testing"

	"github.com/goes-project/goes/protocols"
)

func TestParseRequest(t *testing.T) {
	const head = "GET /a%20b/c?x=1&y=two+words&x=3&e&k%3D=v%26 HTTP/1.1\r\n" +
		"Host: example.com:8080 \r\n" +
		"Cookie: sid=abc; theme=\"dark\"\r\n" +
		"Cookie: lang=en\r\n" +
		"X-Multi: 1\r\n" +
		"x-multi: 2\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"\r\n"
	var req Request
	n, err := ParseRequest([]byte(head+"rest"), &req, Limits{})
	if err != nil || n != len(head) {
		t.Fatalf("ParseRequest = %d, %v; want %d, nil", n, err, len(head))
	}
	checks := []struct {
		name, got, want string
	}{
		{"method", req.Method(), "GET"},
		{"target", req.Target(), "/a%20b/c?x=1&y=two+words&x=3&e&k%3D=v%26"},
		{"path", req.Path(), "/a b/c"},
		{"raw path", string(req.PathBytes()), "/a%20b/c"},
		{"raw query", req.RawQuery(), "x=1&y=two+words&x=3&e&k%3D=v%26"},
		{"query x", req.Query("x"), "1"},
		{"query y", req.Query("y"), "two words"},
		{"query encoded key", req.Query("k="), "v&"},
		{"query missing", req.Query("nope"), ""},
		{"query values", strings.Join(req.QueryValues("x"), ","), "1,3"},
		{"proto", req.Proto(), "HTTP/1.1"},
		{"host", req.Host(), "example.com:8080"},
		{"header", req.Header("HOST"), "example.com:8080"},
		{"header values", strings.Join(req.HeaderValues("X-MULTI"), ","), "1,2"},
		{"header missing", req.Header("X-None"), ""},
		{"cookie sid", req.Cookie("sid"), "abc"},
		{"cookie quoted", req.Cookie("theme"), "dark"},
		{"cookie second field", req.Cookie("lang"), "en"},
		{"cookie missing", req.Cookie("SID"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !req.HasQuery("e") || req.HasQuery("f") {
		t.Errorf("HasQuery(e), HasQuery(f) = %v, %v", req.HasQuery("e"), req.HasQuery("f"))
	}
	if !req.KeepAlive() || !req.HasToken("connection", "UPGRADE") || req.HasToken("connection", "close") {
		t.Errorf("KeepAlive %v, HasToken upgrade %v close %v", req.KeepAlive(),
			req.HasToken("connection", "UPGRADE"), req.HasToken("connection", "close"))
	}
	if req.ContentLength() != 0 || req.Chunked() || req.NumHeaders() != 6 || req.HeadLen() != len(head) {
		t.Errorf("ContentLength %d Chunked %v NumHeaders %d HeadLen %d", req.ContentLength(), req.Chunked(),
			req.NumHeaders(), req.HeadLen())
	}

	// Incomplete heads need more; a later complete parse reuses req.
	for i := 1; i < len(head); i++ {
		if n, err := ParseRequest([]byte(head[:i]), &req, Limits{}); n != 0 || err != nil {
			t.Fatalf("ParseRequest(head[:%d]) = %d, %v; want 0, nil", i, n, err)
		}
	}
}

func TestParseRequestTargets(t *testing.T) {
	tests := []struct {
		name, line, host, path, query string
	}{
		{name: "origin", line: "GET /p?q HTTP/1.1", host: "h", path: "/p", query: "q"},
		{name: "absolute", line: "GET http://other:81/p?q=1 HTTP/1.1", host: "other:81", path: "/p", query: "q=1"},
		{name: "absolute no path", line: "GET https://other HTTP/1.1", host: "other", path: "/"},
		{name: "asterisk", line: "OPTIONS * HTTP/1.1", host: "h", path: "*"},
		{name: "connect", line: "CONNECT other:443 HTTP/1.1", host: "other:443", path: ""},
		{name: "http/1.0 without host", line: "GET /x HTTP/1.0", path: "/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.line + "\r\n"
			if strings.HasSuffix(tc.line, "1.1") {
				in += "Host: h\r\n"
			}
			in += "\r\n"
			var req Request
			if _, err := ParseRequest([]byte(in), &req, Limits{}); err != nil {
				t.Fatal(err)
			}
			if req.Host() != tc.host || string(req.PathBytes()) != tc.path || req.RawQuery() != tc.query {
				t.Errorf("host %q path %q query %q; want %q %q %q", req.Host(), req.PathBytes(), req.RawQuery(),
					tc.host, tc.path, tc.query)
			}
		})
	}
}

// TestMalformed checks the status of every refused request shape, fed
// whole and one byte at a time.
func TestMalformed(t *testing.T) {
	const h = "Host: a\r\n"
	tests := []struct {
		name   string
		in     string
		status int
		max    int // MaxPackageSize; 0 means 10 MiB
	}{
		// Request line.
		{name: "garbage request line", in: "GARBAGE\r\n\r\n", status: 400},
		{name: "tls client hello", in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", status: 400},
		{name: "binary junk", in: "\x00\x01\x02", status: 400},
		{name: "http/0.9", in: "GET /\r\n\r\n", status: 400},
		{name: "double space", in: "GET  / HTTP/1.1\r\n" + h + "\r\n", status: 400},
		{name: "trailing space", in: "GET / HTTP/1.1 \r\n" + h + "\r\n", status: 400},
		{name: "lowercase version", in: "GET / http/1.1\r\n" + h + "\r\n", status: 400},
		{name: "version junk", in: "GET / HTTP/1.x\r\n" + h + "\r\n", status: 400},
		{name: "control in target", in: "GET /a\x01b HTTP/1.1\r\n" + h + "\r\n", status: 400},
		{name: "relative target", in: "GET a/b HTTP/1.1\r\n" + h + "\r\n", status: 400},
		{name: "http/2.0", in: "GET / HTTP/2.0\r\n" + h + "\r\n", status: 505},
		{name: "http/0.9 version", in: "GET / HTTP/0.9\r\n" + h + "\r\n", status: 505},
		{name: "uri too long", in: "GET /" + strings.Repeat("a", 8000) + " HTTP/1.1\r\n" + h + "\r\n", status: 414},

		// Line endings.
		{name: "bare lf request line", in: "GET / HTTP/1.1\n" + h + "\r\n", status: 400},
		{name: "bare lf header", in: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", status: 400},
		{name: "bare lf end", in: "GET / HTTP/1.1\r\n" + h + "\n", status: 400},
		{name: "bare cr", in: "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", status: 400},
		{name: "leading bare lf", in: "\nGET / HTTP/1.1\r\n" + h + "\r\n", status: 400},

		// Header syntax.
		{name: "obs-fold", in: "GET / HTTP/1.1\r\n" + h + "X: a\r\n b\r\n\r\n", status: 400},
		{name: "leading tab", in: "GET / HTTP/1.1\r\n\tX: a\r\n" + h + "\r\n", status: 400},
		{name: "space before colon", in: "GET / HTTP/1.1\r\n" + h + "X-A : b\r\n\r\n", status: 400},
		{name: "empty name", in: "GET / HTTP/1.1\r\n" + h + ": b\r\n\r\n", status: 400},
		{name: "bad name", in: "GET / HTTP/1.1\r\n" + h + "X(a): b\r\n\r\n", status: 400},
		{name: "no colon", in: "GET / HTTP/1.1\r\n" + h + "Xab\r\n\r\n", status: 400},
		{name: "nul in value", in: "GET / HTTP/1.1\r\n" + h + "X: a\x00b\r\n\r\n", status: 400},
		{name: "del in value", in: "GET / HTTP/1.1\r\n" + h + "X: a\x7fb\r\n\r\n", status: 400},

		// Host.
		{name: "missing host", in: "GET / HTTP/1.1\r\nX: y\r\n\r\n", status: 400},
		{name: "two hosts", in: "GET / HTTP/1.1\r\n" + h + h + "\r\n", status: 400},
		{name: "host with space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400},
		{name: "host with slash", in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", status: 400},

		// Smuggling shapes.
		{name: "cl and te", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "te and cl", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400},
		{name: "differing cl", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 400},
		{name: "differing huge cl", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999999\r\nContent-Length: 99999999999999999999998\r\n\r\n", status: 400},
		{name: "cl list", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 5, 5\r\n\r\nhello", status: 400},
		{name: "cl plus", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: +5\r\n\r\nhello", status: 400},
		{name: "cl minus", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", status: 400},
		{name: "cl hex", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 0x5\r\n\r\nhello", status: 400},
		{name: "cl junk", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 5a\r\n\r\nhello", status: 400},
		{name: "cl inner space", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 1 0\r\n\r\nhello", status: 400},
		{name: "cl empty", in: "POST / HTTP/1.1\r\n" + h + "Content-Length:\r\n\r\n", status: 400},
		{name: "te gzip only", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\n\r\n", status: 400},
		{name: "te chunked not last", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n", status: 400},
		{name: "te chunked twice", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, chunked\r\n\r\n", status: 400},
		{name: "te chunked twice in two fields", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "te xchunked", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: xchunked\r\n\r\n", status: 400},
		{name: "te chunked params", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked;q=1\r\n\r\n", status: 400},
		{name: "te empty element", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked,\r\n\r\n", status: 400},
		{name: "te empty", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n\r\n", status: 400},
		{name: "te vertical tab", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: \x0bchunked\r\n\r\n", status: 400},
		{name: "te in http/1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400},
		{name: "te space before colon", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n", status: 400},
		{name: "te folded", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding:\r\n chunked\r\n\r\n", status: 400},
		{name: "te gzip then chunked", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "te gzip field then chunked field", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", status: 501},

		// Chunked bodies.
		{name: "chunk size junk", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", status: 400},
		{name: "chunk size sign", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", status: 400},
		{name: "chunk size 0x", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size leading space", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size then junk", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk size bare lf", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk data too long", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n", status: 400},
		{name: "chunk data bare lf", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", status: 400},
		{name: "chunk ext with ctl", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n", status: 400},
		{name: "chunk line too long", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("a", 5000) + "\r\n", status: 400},
		{name: "trailer obs-fold", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", status: 400},
		{name: "trailer bare lf", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n", status: 400},

		// Limits.
		{name: "header over limit", in: "GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("a", 9000), status: 431},
		{name: "header over limit complete", in: "GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("a", 9000) + "\r\n\r\n", status: 431},
		{name: "too many headers", in: "GET / HTTP/1.1\r\n" + h + strings.Repeat("X: a\r\n", 100) + "\r\n", status: 431},
		{name: "trailer over limit", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: " + strings.Repeat("a", 9000), status: 431},
		{name: "body over limit", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 11534336\r\n\r\n", status: 413},
		{name: "body over small limit", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 100\r\n\r\n", status: 413, max: 120},
		{name: "huge cl", in: "POST / HTTP/1.1\r\n" + h + "Content-Length: 99999999999999999999999999\r\n\r\n", status: 413},
		{name: "chunk over limit", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nA00000\r\n", status: 413},
		{name: "chunk size overflow", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n", status: 413},
		{name: "chunks over small limit", in: "POST / HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1\r\na\r\n", 20), status: 413, max: 120},
		{name: "head over small package limit", in: "GET / HTTP/1.1\r\n" + h + "X: " + strings.Repeat("a", 200), status: 413, max: 120},

		// Expectations.
		{name: "unknown expectation", in: "POST / HTTP/1.1\r\n" + h + "Expect: 200-ok\r\nContent-Length: 1\r\n\r\nx", status: 417},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, bytewise := range []bool{false, true} {
				p := New()
				c := newTestConn(p)
				if tc.max > 0 {
					c.max = tc.max
				}
				rt := &runtime{p: p, c: c}
				var err error
				if bytewise {
					for i := 0; i < len(tc.in) && err == nil; i++ {
						err = rt.read(t, []byte{tc.in[i]})
					}
				} else {
					err = rt.read(t, []byte(tc.in))
				}
				if got := statusOf(t, err); got != tc.status {
					t.Fatalf("bytewise=%v: status %d (%v), want %d", bytewise, got, err, tc.status)
				}
				if tc.status == 413 && !errors.Is(err, protocols.ErrPackageTooLarge) {
					t.Errorf("413 error %v does not wrap protocols.ErrPackageTooLarge", err)
				}
			}
		})
	}
}

// TestEarlyErrors checks that refusals do not wait for bytes that cannot
// change them.
func TestEarlyErrors(t *testing.T) {
	tests := []struct {
		name, in string
		status   int
	}{
		{name: "413 right after the head", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000000\r\n\r\n", status: 413},
		{name: "431 at the limit", in: "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", DefaultMaxHeaderBytes), status: 431},
		{name: "400 before the line ends", in: "\x16\x03\x01", status: 400},
		{name: "400 at a bad field name", in: "GET / HTTP/1.1\r\nHo st", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			rt := &runtime{p: p, c: newTestConn(p)}
			if got := statusOf(t, rt.read(t, []byte(tc.in))); got != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
		})
	}
}

func TestLimitsConfigurable(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n"
	p := &Protocol{Limits: Limits{MaxHeaderBytes: 16 << 10, MaxHeaders: 2, MaxURIBytes: 10}}
	rt := &runtime{p: p, c: newTestConn(p)}
	delivered := 0
	rt.onMessage = func(*Request, []byte) { delivered++ }
	if err := rt.read(t, []byte(in)); err != nil || delivered != 1 {
		t.Fatalf("16 KiB limit: err %v, delivered %d", err, delivered)
	}
	rt = &runtime{p: p, c: newTestConn(p)}
	if got := statusOf(t, rt.read(t, []byte("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"))); got != 431 {
		t.Fatalf("MaxHeaders 2: status %d, want 431", got)
	}
	rt = &runtime{p: p, c: newTestConn(p)}
	if got := statusOf(t, rt.read(t, []byte("GET /0123456789 HTTP/1.1\r\n"))); got != 414 {
		t.Fatalf("MaxURIBytes 10: status %d, want 414", got)
	}
	var req Request
	if _, err := ParseRequest([]byte("GET /0123456789 HTTP/1.1\r\n"), &req, p.Limits); !errors.Is(err, ErrURITooLong) {
		t.Fatalf("ParseRequest with MaxURIBytes 10: %v, want ErrURITooLong", err)
	}
}
