package http

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b=c&d HTTP/1.1\r\nHost: a\r\nCookie: x=y; z=w\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	"HEAD http://h/x HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"\r\n\r\nGET / HTTP/2.0\r\n\r\n",
	"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n",
	"GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("b", 600) + "\r\n\r\n",
}

// fuzzProtocol has small limits so that short inputs reach them.
func fuzzProtocol() *Protocol {
	return &Protocol{Limits: Limits{MaxHeaderBytes: 512, MaxHeaders: 8, MaxURIBytes: 64}}
}

// feedReads runs reads through a fresh connection and describes what was
// delivered, the error if any, what was left buffered and, when logged,
// the access log's entries (p.AccessLog is set to a fresh record; nil
// otherwise): one per answer, the refusal's included.
func feedReads(t *testing.T, p *Protocol, small, logged bool, reads [][]byte) string {
	t.Helper()
	rl := &recordLog{}
	p.AccessLog = nil
	if logged {
		p.AccessLog = rl
	}
	c := newTestConn(p)
	if small {
		c.max = 1024
	}
	rt := &runtime{p: p, c: c}
	var b strings.Builder
	answered := 0
	rt.onMessage = func(r *Request, body []byte) {
		b.WriteString(summary(r, body))
		b.WriteByte('\n')
		answered++
		if r.Method() == "HEAD" {
			Respond(c, &Response{Status: 204})
		} else {
			c.SendBytes(body, false)
		}
	}
	access := func(refused int) string {
		if !logged {
			return ""
		}
		if len(rl.got) != answered+refused {
			t.Fatalf("%d access entries for %d answers and %d refusals: %+v", len(rl.got), answered, refused, rl.got)
		}
		var a strings.Builder
		for _, e := range rl.got {
			fmt.Fprintf(&a, "\naccess %d %q %q out %d", e.Status, e.Method, e.Path, e.BytesOut)
		}
		return a.String()
	}
	for _, rd := range reads {
		// Each read is a fresh copy: Decode may rewrite what it was given.
		if err := rt.read(t, append([]byte(nil), rd...)); err != nil {
			var he *Error
			errors.As(err, &he)
			status := statusOf(t, err)
			fmt.Fprintf(&b, "error %d %q (%v)", status, he.Reason, err)
			b.WriteString(access(1))
			if logged {
				if e := rl.got[len(rl.got)-1]; e.Status != status || e.Start.IsZero() || e.BytesIn <= 0 {
					t.Fatalf("refusal %d: entry %+v", status, e)
				}
			}
			return b.String()
		}
	}
	fmt.Fprintf(&b, "left %d", len(rt.buf))
	b.WriteString(access(0))
	return b.String()
}

// FuzzInput feeds an input whole, split in two or three reads, and (when
// short) one byte at a time, and requires the same requests, the same
// error (status and reason) and the same leftover every time; with the
// access log on (every other input), the same entries too, one per answer
// and one for the refusal.
func FuzzInput(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint16(i*7), uint16(i*13), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint16, small bool) {
		p := fuzzProtocol()
		if !small {
			p = New()
		}
		logged := s2%2 == 0 // with the access log on or off
		whole := feedReads(t, p, small, logged, [][]byte{data})
		if len(data) == 0 {
			return
		}
		a := int(s1) % (len(data) + 1)
		b := int(s2) % (len(data) + 1)
		if a > b {
			a, b = b, a
		}
		if got := feedReads(t, p, small, logged, [][]byte{data[:a], data[a:]}); got != whole {
			t.Fatalf("split at %d:\n%s\nwhole:\n%s", a, got, whole)
		}
		if got := feedReads(t, p, small, logged, [][]byte{data[:a], data[a:b], data[b:]}); got != whole {
			t.Fatalf("split at %d, %d:\n%s\nwhole:\n%s", a, b, got, whole)
		}
		if len(data) <= 1024 {
			reads := make([][]byte, len(data))
			for i := range data {
				reads[i] = data[i : i+1]
			}
			if got := feedReads(t, p, small, logged, reads); got != whole {
				t.Fatalf("byte by byte:\n%s\nwhole:\n%s", got, whole)
			}
		}
	})
}

// FuzzParseRequest checks ParseRequest on every prefix of an input: a
// prefix that is complete or wrong says so exactly as the whole input does,
// and n never exceeds the input.
func FuzzParseRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := fuzzProtocol().Limits
		var req Request
		n, err := ParseRequest(data, &req, lim)
		if n < 0 || n > len(data) || n > 0 && err != nil {
			t.Fatalf("ParseRequest = %d, %v for %d bytes", n, err, len(data))
		}
		var he *Error
		if err != nil && !errors.As(err, &he) {
			t.Fatalf("error %v is not an *Error", err)
		}
		if n > 0 {
			// Accessors must not panic on any accepted head.
			_ = summary(&req, nil)
			_, _ = req.CookieBytes("a")
			_ = req.Query("a")
			_ = req.Path()
		}
		step := 1
		if len(data) > 512 {
			step = len(data) / 256
		}
		for i := 0; i < len(data); i += step {
			var pr Request
			pn, perr := ParseRequest(data[:i], &pr, lim)
			switch {
			case perr != nil:
				if perr != err {
					t.Fatalf("prefix %d: %v; whole: %d, %v", i, perr, n, err)
				}
			case pn > 0:
				if pn != n {
					t.Fatalf("prefix %d: n=%d; whole: %d, %v", i, pn, n, err)
				}
			}
		}
	})
}
