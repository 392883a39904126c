package http

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"strings"
	"testing"
)

func TestAcceptEncoding(t *testing.T) {
	tests := []struct {
		name string
		vals []string // one per field line; nil: no field
		want bool
	}{
		{name: "absent", vals: nil, want: false},
		{name: "empty", vals: []string{""}, want: false},
		{name: "gzip", vals: []string{"gzip"}, want: true},
		{name: "upper", vals: []string{"GZIP"}, want: true},
		{name: "x-gzip", vals: []string{"x-gzip"}, want: true},
		{name: "browser", vals: []string{"gzip, deflate, br, zstd"}, want: true},
		{name: "other codings", vals: []string{"deflate, br"}, want: false},
		{name: "identity only", vals: []string{"identity"}, want: false},
		{name: "q=0 refuses", vals: []string{"gzip;q=0"}, want: false},
		{name: "q=0.000 refuses", vals: []string{"gzip;q=0.000"}, want: false},
		{name: "Q upper and spaces", vals: []string{"gzip ; Q=0.5"}, want: true},
		{name: "q=1.000", vals: []string{"gzip;q=1.000"}, want: true},
		{name: "q=0.001", vals: []string{"gzip;q=0.001"}, want: true},
		{name: "q over 1 ignored", vals: []string{"gzip;q=1.001"}, want: false},
		{name: "q four decimals ignored", vals: []string{"gzip;q=0.0001"}, want: false},
		{name: "q empty ignored", vals: []string{"gzip;q="}, want: false},
		{name: "q sign ignored", vals: []string{"gzip;q=-1"}, want: false},
		{name: "other parameter", vals: []string{"gzip;level=9;q=0.2"}, want: true},
		{name: "star", vals: []string{"*"}, want: true},
		{name: "star q=0", vals: []string{"*;q=0"}, want: false},
		{name: "gzip refused despite star", vals: []string{"gzip;q=0, *"}, want: false},
		{name: "gzip listed despite star q=0", vals: []string{"*;q=0, gzip"}, want: true},
		{name: "identity preferred", vals: []string{"gzip;q=0.5, identity"}, want: false},
		{name: "gzip preferred", vals: []string{"gzip, identity;q=0.5"}, want: true},
		{name: "tie goes to gzip", vals: []string{"gzip;q=0.5, identity;q=0.5"}, want: true},
		{name: "identity refused", vals: []string{"identity;q=0, gzip;q=0.1"}, want: true},
		{name: "refusal wins over repeat", vals: []string{"gzip", "gzip;q=0"}, want: false},
		{name: "two lines", vals: []string{"br", "gzip"}, want: true},
		{name: "empty elements", vals: []string{" , ,gzip,"}, want: true},
		{name: "garbage", vals: []string{";;q=;,=,;"}, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := codingPrefs{gzip: qUnlisted, identity: qUnlisted, star: qUnlisted}
			for _, v := range tc.vals {
				cp.add([]byte(v))
			}
			if got := cp.gzipOK(); got != tc.want {
				t.Fatalf("%q: gzipOK = %v (%+v), want %v", tc.vals, got, cp, tc.want)
			}
			// The same through a request's fields.
			var b strings.Builder
			b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
			for _, v := range tc.vals {
				fmt.Fprintf(&b, "Accept-Encoding: %s\r\n", v)
			}
			b.WriteString("\r\n")
			var r Request
			if n, err := ParseRequest([]byte(b.String()), &r, Limits{}); err != nil || n != b.Len() {
				t.Fatalf("ParseRequest = %d, %v", n, err)
			}
			if got := acceptEncoding(&r).gzipOK(); got != tc.want {
				t.Fatalf("request: gzipOK = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzAcceptEncoding checks that any Accept-Encoding value parses
// without panic into weights in range, that letter case does not matter,
// and that a request carrying it, split across two reads, is answered
// with gzip exactly when the parser says so.
func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5, identity;q=0.6", "GZIP;Q=1.000", "x-gzip; a=b ;q=0.01",
		",,;", "gzip;q=1.0001", "br;q=1, gzip;q=0.9", "\"gzip\"", "gzip;q=\"0.5\""} {
		f.Add(s, 10)
	}
	p := &Protocol{Compress: CompressOptions{Enabled: true, MinSize: 1}}
	body := bytes.Repeat([]byte("compressible text "), 10)
	f.Fuzz(func(t *testing.T, v string, split int) {
		cp := codingPrefs{gzip: qUnlisted, identity: qUnlisted, star: qUnlisted}
		cp.add([]byte(v))
		for _, q := range []int{cp.gzip, cp.identity, cp.star} {
			if q < qUnlisted || q > qMax {
				t.Fatalf("%q: weight %d out of range (%+v)", v, q, cp)
			}
		}
		up := codingPrefs{gzip: qUnlisted, identity: qUnlisted, star: qUnlisted}
		up.add(bytes.Map(func(r rune) rune { // ASCII letters only
			if 'a' <= r && r <= 'z' {
				return r - 'a' + 'A'
			}
			return r
		}, []byte(v)))
		if up != cp {
			t.Fatalf("%q: %+v, upper case %+v", v, cp, up)
		}

		req := "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: " + v + "\r\n\r\n"
		if _, err := ParseRequest([]byte(req), new(Request), Limits{}); err != nil {
			return // not a valid field value
		}
		c := newTestConn(p)
		rt := &runtime{p: p, c: c, onMessage: func(*Request, []byte) { c.SendBytes(body, false) }}
		if split < 0 || split > len(req) {
			split = len(req) / 2
		}
		for _, rd := range []string{req[:split], req[split:]} {
			if err := rt.read(t, []byte(rd)); err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		resp, err := nethttp.ReadResponse(bufio.NewReader(bytes.NewReader(c.out)), nil)
		if err != nil {
			t.Fatalf("response %q: %v", c.out, err)
		}
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != cp.gzipOK() {
			t.Fatalf("%q: coded %v, parser says %v", v, got, cp.gzipOK())
		}
	})
}

// answerOf feeds req to a fresh connection of p, answers it with answer
// and returns the parsed response and its decoded body.
func answerOf(t *testing.T, p *Protocol, req string, answer func(c *testConn)) (*nethttp.Response, []byte) {
	t.Helper()
	c := newTestConn(p)
	rt := &runtime{p: p, c: c, onMessage: func(*Request, []byte) { answer(c) }}
	if err := rt.read(t, []byte(req)); err != nil {
		t.Fatal(err)
	}
	method := strings.Fields(req)[0]
	resp, err := nethttp.ReadResponse(bufio.NewReader(bytes.NewReader(c.out)), &nethttp.Request{Method: method})
	if err != nil {
		t.Fatalf("response %q: %v", c.out, err)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != int64(len(raw)) && method != "HEAD" {
		t.Fatalf("Content-Length %d, body %d bytes", resp.ContentLength, len(raw))
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		return resp, raw
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return resp, plain
}

// TestCompressDecisions covers which answers are coded, in process.
func TestCompressDecisions(t *testing.T) {
	text := bytes.Repeat([]byte("<p>hello, goer</p>\n"), 100) // 1900 bytes
	noise := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	on := &Protocol{Compress: CompressOptions{Enabled: true}}
	get := "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"
	respond := func(r Response) func(c *testConn) {
		return func(c *testConn) {
			if err := Respond(c, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	send := func(c *testConn) { c.SendBytes(text, false) }
	tests := []struct {
		name     string
		p        *Protocol
		req      string
		answer   func(c *testConn)
		body     []byte // the body sent
		coded    bool
		vary     bool
		etag     string // want ETag when not ""
		encoding string // want Content-Encoding
	}{
		{name: "send", p: on, req: get, answer: send, body: text, coded: true, vary: true},
		{name: "off", p: &Protocol{}, req: get, answer: send, body: text},
		{name: "no accept-encoding", p: on, req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", answer: send, body: text, vary: true},
		{name: "refused", p: on, req: "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip;q=0\r\n\r\n", answer: send, body: text, vary: true},
		{name: "head", p: on, req: "HEAD / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n", answer: send, vary: true},
		{name: "http/1.0", p: on, req: "GET / HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", answer: send, body: text, coded: true, vary: true},
		{name: "respond json", p: on, req: get, answer: respond(Response{ContentType: "application/json", Body: text}), body: text, coded: true, vary: true},
		{name: "respond type in header", p: on, req: get,
			answer: respond(Response{Header: []Field{{"content-type", "Text/Plain"}}, Body: text}), body: text, coded: true, vary: true},
		{name: "other type", p: on, req: get, answer: respond(Response{ContentType: "image/png", Body: text}), body: text},
		{name: "custom types", p: &Protocol{Compress: CompressOptions{Enabled: true, Types: []string{"image/png"}}}, req: get,
			answer: respond(Response{ContentType: "image/png", Body: text}), body: text, coded: true, vary: true},
		{name: "below min size", p: on, req: get, answer: respond(Response{Body: text[:1023]}), body: text[:1023]},
		{name: "min size", p: on, req: get, answer: respond(Response{Body: text[:1024]}), body: text[:1024], coded: true, vary: true},
		{name: "custom min size", p: &Protocol{Compress: CompressOptions{Enabled: true, MinSize: 10 << 10}}, req: get, answer: send, body: text},
		{name: "incompressible", p: on, req: get, answer: respond(Response{ContentType: "text/plain", Body: noise}), body: noise, vary: true},
		{name: "already coded", p: on, req: get,
			answer: respond(Response{Header: []Field{{"Content-Encoding", "br"}}, Body: text}), body: text, encoding: "br"},
		{name: "404", p: on, req: get, answer: respond(Response{Status: 404, Body: text}), body: text, coded: true, vary: true},
		{name: "206", p: on, req: get, answer: respond(Response{Status: 206, Header: []Field{{"Content-Range", "bytes 0-1899/5000"}}, Body: text}), body: text},
		{name: "204", p: on, req: get, answer: respond(Response{Status: 204, Body: text})},
		{name: "304", p: on, req: get, answer: respond(Response{Status: 304, Body: text})},
		{name: "etag weakened", p: on, req: get, answer: respond(Response{Header: []Field{{"ETag", `"v1"`}}, Body: text}),
			body: text, coded: true, vary: true, etag: `W/"v1"`},
		{name: "weak etag kept", p: on, req: get, answer: respond(Response{Header: []Field{{"ETag", `W/"v1"`}}, Body: text}),
			body: text, coded: true, vary: true, etag: `W/"v1"`},
		{name: "etag kept when identity", p: on, req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			answer: respond(Response{Header: []Field{{"ETag", `"v1"`}}, Body: text}), body: text, vary: true, etag: `"v1"`},
		{name: "vary given", p: on, req: get, answer: respond(Response{Header: []Field{{"Vary", "Cookie, accept-encoding"}}, Body: text}),
			body: text, coded: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := answerOf(t, tc.p, tc.req, tc.answer)
			enc := resp.Header.Get("Content-Encoding")
			if tc.coded && enc != "gzip" || !tc.coded && enc != tc.encoding {
				t.Fatalf("Content-Encoding %q, want coded=%v %q", enc, tc.coded, tc.encoding)
			}
			if !bytes.Equal(body, tc.body) {
				t.Fatalf("body %d bytes, want %d", len(body), len(tc.body))
			}
			vary := resp.Header.Values("Vary")
			if gotVary := len(vary) == 1 && vary[0] == "Accept-Encoding"; gotVary != tc.vary {
				t.Fatalf("Vary %q, want Accept-Encoding: %v", vary, tc.vary)
			}
			if tc.etag != "" && resp.Header.Get("ETag") != tc.etag {
				t.Fatalf("ETag %q, want %q", resp.Header.Get("ETag"), tc.etag)
			}
			if tc.name == "head" && resp.ContentLength != int64(len(text)) {
				t.Fatalf("HEAD Content-Length %d, want the identity length %d", resp.ContentLength, len(text))
			}
		})
	}
}

// TestCompressLevels checks every accepted level and that invalid ones
// fall back to the default.
func TestCompressLevels(t *testing.T) {
	text := bytes.Repeat([]byte("level test line\n"), 200)
	for _, level := range []int{-3, -2, -1, 0, 1, 5, 9, 10} {
		t.Run(fmt.Sprintf("level=%d", level), func(t *testing.T) {
			p := &Protocol{Compress: CompressOptions{Enabled: true, Level: level}}
			for range 2 { // the second one from the pool
				resp, body := answerOf(t, p, "GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n",
					func(c *testConn) { c.SendBytes(text, false) })
				if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, text) {
					t.Fatalf("Content-Encoding %q, body %d bytes", resp.Header.Get("Content-Encoding"), len(body))
				}
			}
		})
	}
}

// TestCompressIdentityAllocs checks that turning compression on costs
// the answers it leaves alone no allocation (the coded path takes pooled
// writers, which the race detector's sync.Pool drops at random: its
// allocations are reported by BenchmarkCompress instead).
func TestCompressIdentityAllocs(t *testing.T) {
	p := &Protocol{Compress: CompressOptions{Enabled: true}}
	c := newTestConn(p)
	in := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	body := bytes.Repeat([]byte("x"), 4<<10)
	answer := func() {
		c.out = c.out[:0]
		if _, err := p.Input(c, in); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Decode(c, in); err != nil {
			t.Fatal(err)
		}
		if err := Respond(c, &Response{Header: []Field{{"ETag", `"1"`}}, Body: body}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Input(c, in); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Decode(c, in); err != nil {
			t.Fatal(err)
		}
		if err := c.SendBytes(body, false); err != nil {
			t.Fatal(err)
		}
	}
	answer()
	if !bytes.Contains(c.out, []byte("\r\nVary: Accept-Encoding\r\n")) {
		t.Fatalf("answer without Vary: %.200q", c.out)
	}
	if n := testing.AllocsPerRun(100, answer); n != 0 {
		t.Fatalf("%v allocations per Respond and Send, want 0", n)
	}
}
