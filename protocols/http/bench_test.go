package http

import (
	"bufio"
	"bytes"
	nethttp "net/http"
	"strings"
	"testing"
)

const benchGet = "GET /index.html?user=42&lang=en HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: sid=0123456789abcdef; theme=dark\r\n" +
	"\r\n"

const benchPost = "POST /api/items HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\n" +
	"User-Agent: curl/8.5.0\r\n" +
	"Accept: */*\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Length: 27\r\n" +
	"\r\n" +
	`{"name":"goer","count":123}`

const benchChunked = "POST /upload HTTP/1.1\r\n" +
	"Host: 127.0.0.1:8080\r\n" +
	"User-Agent: bench\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"\r\n" +
	"10\r\n0123456789abcdef\r\n" +
	"10;part=2\r\n0123456789abcdef\r\n" +
	"8\r\n01234567\r\n" +
	"0\r\nX-Checksum: 1234\r\n\r\n"

// BenchmarkRequest runs Input, Decode and Encode for every request of a
// read, as the runtime does, on one warmed-up connection. With
// release=on the state goes back to the pool after every read, as the
// connections runtime does once a read is all delivered, and is taken
// again by the next one.
func BenchmarkRequest(b *testing.B) {
	kinds := []struct{ name, in string }{
		{"get", benchGet},
		{"post", benchPost},
		{"chunked-post", benchChunked},
		{"pipelined-16", strings.Repeat(benchGet, 16)},
	}
	for _, k := range kinds {
		for _, release := range []bool{false, true} {
			name := "kind=" + k.name + "/release=off"
			if release {
				name = "kind=" + k.name + "/release=on"
			}
			b.Run(name, func(b *testing.B) {
				p := New()
				c := newTestConn(p)
				in := []byte(k.in)
				buf := make([]byte, len(in))
				body := []byte("hello, goer")
				var out []byte
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					copy(buf, in) // Decode de-chunks in place
					out = out[:0]
					for off := 0; off < len(buf); {
						n, err := p.Input(c, buf[off:])
						if err != nil || n == 0 {
							b.Fatalf("Input = %d, %v", n, err)
						}
						if _, err := p.Decode(c, buf[off:off+n]); err != nil {
							b.Fatal(err)
						}
						off += n
						if out, err = p.Encode(c, out, body); err != nil {
							b.Fatal(err)
						}
					}
					if release {
						p.ReleaseState(c)
					}
				}
			})
		}
	}
}

// BenchmarkRespond answers a GET with a Response carrying extra fields.
func BenchmarkRespond(b *testing.B) {
	p := New()
	c := newTestConn(p)
	in := []byte(benchGet)
	body := []byte(`{"ok":true}`)
	b.ReportAllocs()
	for b.Loop() {
		c.out = c.out[:0]
		n, err := p.Input(c, in)
		if err != nil || n != len(in) {
			b.Fatalf("Input = %d, %v", n, err)
		}
		if _, err := p.Decode(c, in); err != nil {
			b.Fatal(err)
		}
		r := RequestOf(c)
		if _, ok := r.CookieBytes("sid"); !ok {
			b.Fatal("no cookie")
		}
		if err := Respond(c, &Response{Status: 201, ContentType: "application/json",
			Header: []Field{{"Cache-Control", "no-store"}}, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse compares the head parser with net/http's ReadRequest on
// the same request (net/http also builds maps and strings: it is the
// reference point, not a like-for-like peer).
func BenchmarkParse(b *testing.B) {
	in := []byte(benchGet)
	b.Run("impl=goes", func(b *testing.B) {
		var req Request
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if n, err := ParseRequest(in, &req, Limits{}); n != len(in) || err != nil {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("impl=nethttp", func(b *testing.B) {
		rd := bytes.NewReader(in)
		br := bufio.NewReader(rd)
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			rd.Reset(in)
			br.Reset(rd)
			if _, err := nethttp.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}
