package http

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/goes-project/goes/protocols"
)

// streamRecorder delivers through rt and records, per request, its
// summary with the body put back together from its pieces, how many
// pieces came, and whether the head was readable on every piece.
type streamRecorder struct {
	rt      *runtime
	body    []byte
	pieces  int
	got     []string
	headBad bool
	maxLeft int // most bytes left in the runtime's buffer after a read
}

func newStreamRecorder(p *Protocol) *streamRecorder {
	r := &streamRecorder{rt: &runtime{p: p, c: newTestConn(p)}}
	r.rt.onMessage = func(req *Request, body []byte) {
		if !req.Streamed() {
			r.got = append(r.got, summary(req, body))
			r.rt.c.SendBytes(body, false)
			return
		}
		r.pieces++
		if req.Header("Host") == "" || !bytes.Equal(req.Body(), body) {
			r.headBad = true
		}
		r.body = append(r.body, body...)
		if req.BodyDone() {
			r.got = append(r.got, summary(req, r.body)+fmt.Sprintf(" pieces>0=%v", r.pieces > 0))
			r.rt.c.SendBytes([]byte("ok"), false)
			r.body, r.pieces = nil, 0
		}
	}
	return r
}

// feed delivers reads; it returns the first error.
func (r *streamRecorder) feed(t *testing.T, reads ...[]byte) error {
	t.Helper()
	for _, rd := range reads {
		if err := r.rt.read(t, append([]byte(nil), rd...)); err != nil {
			return err
		}
		r.maxLeft = max(r.maxLeft, len(r.rt.buf))
	}
	return nil
}

// streamAll is a StreamBody that streams every body.
func streamAll(protocols.Conn, *Request) bool { return true }

const (
	streamCL = "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nabcdefghijklmnopqrstuvwxyz"
	// chunks, extensions, whitespace, an empty-data line ending, trailers
	streamChunked = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5\r\nhello\r\n1;ext=1\r\n,\r\nA \t;x\r\n0123456789\r\n0\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n"
	streamNext = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
)

// TestStreamBodyPieces: with StreamBody, a body (Content-Length or
// chunked, trailers and all) reaches OnMessage in pieces that add up to
// what whole delivery gives, whatever the reads, with the head readable
// on every piece and BodyDone on the last; a pipelined request after it
// is delivered whole; nothing of the body stays in the runtime's buffer
// beyond a chunk-size line or the trailer section.
func TestStreamBodyPieces(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"content-length", streamCL + streamNext},
		{"chunked", streamChunked + streamNext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whole := newStreamRecorder(New())
			if err := whole.feed(t, []byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if len(whole.got) != 2 {
				t.Fatalf("whole delivery: %q", whole.got)
			}
			want := []string{whole.got[0] + " pieces>0=true", whole.got[1]}
			in := []byte(tc.in)
			check := func(t *testing.T, what string, reads ...[]byte) {
				t.Helper()
				p := New()
				p.StreamBody = streamAll
				r := newStreamRecorder(p)
				if err := r.feed(t, reads...); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if strings.Join(r.got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("%s:\n%s\nwant:\n%s", what, strings.Join(r.got, "\n"), strings.Join(want, "\n"))
				}
				if r.headBad {
					t.Fatalf("%s: the head or Body was wrong on a piece", what)
				}
				if r.maxLeft > 64 {
					t.Fatalf("%s: %d bytes left buffered after a read", what, r.maxLeft)
				}
				if got := string(r.rt.c.out); strings.Count(got, "HTTP/1.1 200 OK") != 2 {
					t.Fatalf("%s: answers %q", what, got)
				}
			}
			check(t, "whole", in)
			for i := 1; i < len(in); i++ {
				check(t, fmt.Sprintf("split at %d", i), in[:i], in[i:])
			}
			bytewise := make([][]byte, len(in))
			for i := range in {
				bytewise[i] = in[i : i+1]
			}
			check(t, "byte by byte", bytewise...)
		})
	}
}

// TestStreamBodyManyReads: a large chunked body (many chunks, each over
// several reads, size lines split too) and a large Content-Length body
// stream through reads of odd sizes, piece by piece.
func TestStreamBodyManyReads(t *testing.T) {
	var chunked, want bytes.Buffer
	chunked.WriteString("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 300 {
		data := bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i)
		fmt.Fprintf(&chunked, "%x;n=%d\r\n%s\r\n", len(data), i, data)
		want.Write(data)
	}
	chunked.WriteString("0\r\n\r\n")
	cl := fmt.Sprintf("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", want.Len(), want.Bytes())
	for _, tc := range []struct{ name, in string }{{"chunked", chunked.String()}, {"content-length", cl}} {
		for _, size := range []int{1, 7, 777, 4096, 65536} {
			t.Run(fmt.Sprintf("%s/read=%d", tc.name, size), func(t *testing.T) {
				p := New()
				p.StreamBody = streamAll
				r := newStreamRecorder(p)
				var got []byte
				r.rt.onMessage = func(req *Request, body []byte) {
					got = append(got, body...)
					if req.BodyDone() {
						r.got = append(r.got, "done")
					}
				}
				in := []byte(tc.in)
				for off := 0; off < len(in); off += size {
					if err := r.feed(t, in[off:min(off+size, len(in))]); err != nil {
						t.Fatalf("at %d: %v", off, err)
					}
				}
				if !bytes.Equal(got, want.Bytes()) || len(r.got) != 1 {
					t.Fatalf("body of %d bytes (want %d), done %d times", len(got), want.Len(), len(r.got))
				}
				if r.maxLeft > 64 {
					t.Fatalf("%d bytes left buffered after a read", r.maxLeft)
				}
			})
		}
	}
}

// TestStreamBodyAsked: StreamBody is asked once per request with a body
// (not for a GET without one), sees the head, and a false answer means
// whole delivery as without it.
func TestStreamBodyAsked(t *testing.T) {
	p := New()
	var asked []string
	p.StreamBody = func(c protocols.Conn, req *Request) bool {
		asked = append(asked, fmt.Sprintf("%s %s %d", req.Method(), req.Path(), req.ContentLength()))
		return req.Path() == "/stream"
	}
	r := newStreamRecorder(p)
	in := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /whole HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /stream HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
	for i := range in { // byte by byte: asked once all the same
		if err := r.feed(t, []byte(in[i:i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if want := "POST /whole 3|POST /stream 3"; strings.Join(asked, "|") != want {
		t.Fatalf("asked %q, want %q", asked, want)
	}
	if len(r.got) != 3 || !strings.Contains(r.got[1], `body="abc"`) || !strings.Contains(r.got[2], `body="xyz"`) || !strings.HasSuffix(r.got[2], "pieces>0=true") {
		t.Fatalf("delivered %q", r.got)
	}
}

// TestStreamBodyLarge: a streamed body may be far over MaxPackageSize
// (which then bounds the head only); without StreamBody it is a 413.
func TestStreamBodyLarge(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"
	body := bytes.Repeat([]byte("0123456789"), 500)
	p := New()
	p.StreamBody = streamAll
	r := newStreamRecorder(p)
	r.rt.c.max = 1024
	if err := r.feed(t, []byte(head), body[:3000], body[3000:]); err != nil {
		t.Fatal(err)
	}
	if len(r.got) != 1 || !strings.Contains(r.got[0], fmt.Sprintf("body=%q", body)) {
		t.Fatalf("delivered %q", r.got)
	}
	plain := newStreamRecorder(New())
	plain.rt.c.max = 1024
	if got := statusOf(t, plain.feed(t, []byte(head))); got != 413 {
		t.Fatalf("without StreamBody: %d, want 413", got)
	}
}

// TestStreamBodyErrors: a streamed chunked body is checked as strictly as
// a buffered one (400, 431 for trailers over the limit), and a chunk size
// too large to count is a 413.
func TestStreamBodyErrors(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"bad size", "5x\r\nhello\r\n", 400},
		{"bare LF", "5\nhello\r\n", 400},
		{"data without CRLF", "5\r\nhelloX", 400},
		{"size line too long", "5;" + strings.Repeat("e", maxChunkLine) + "\r\n", 400},
		{"size overflow", strings.Repeat("f", 17) + "\r\n", 413},
		{"trailers too large", "0\r\nX: " + strings.Repeat("t", DefaultMaxHeaderBytes) + "\r\n\r\n", 431},
		{"bad trailer", "0\r\nX : y\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []int{0, 1, len(tc.body) / 2} {
				p := New()
				p.StreamBody = streamAll
				r := newStreamRecorder(p)
				err := r.feed(t, []byte(head+tc.body[:split]), []byte(tc.body[split:]))
				if got := statusOf(t, err); got != tc.status {
					t.Fatalf("split %d: status %d (%v), want %d", split, got, err, tc.status)
				}
			}
		})
	}
}

// TestStreamBodyConnection: Expect: 100-continue is answered when the
// head is read; a request that closes the connection has the input after
// its body dropped; the state is not released while a body streams.
func TestStreamBodyConnection(t *testing.T) {
	p := New()
	p.StreamBody = streamAll
	r := newStreamRecorder(p)
	r.rt.release = true
	head := "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 4\r\n\r\n"
	if err := r.feed(t, []byte(head)); err != nil {
		t.Fatal(err)
	}
	if got := string(r.rt.c.raw); got != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("raw %q, want 100 Continue", got)
	}
	if err := r.feed(t, []byte("ab")); err != nil {
		t.Fatal(err)
	}
	if r.rt.c.state == nil {
		t.Fatal("state released while the body streams")
	}
	if err := r.feed(t, []byte("cd"+streamNext)); err != nil {
		t.Fatal(err)
	}
	if len(r.got) != 1 || !strings.Contains(r.got[0], `body="abcd"`) {
		t.Fatalf("delivered %q", r.got)
	}
	if !r.rt.c.closeAfter || !strings.Contains(string(r.rt.c.out), "Connection: close") {
		t.Fatalf("answer %q (close after flush %v)", r.rt.c.out, r.rt.c.closeAfter)
	}
}

// TestPacketSize: the length of a request with Content-Length once its
// head is in; 0 before, for chunked and streamed bodies, and over the
// package limit.
func TestPacketSize(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"
	for _, tc := range []struct {
		name   string
		in     string
		stream bool
		max    int
		want   int
	}{
		{"content-length", head + "abc", false, 0, len(head) + 1000},
		{"head incomplete", head[:20], false, 0, 0},
		{"no body", "GET / HTTP/1.1\r\nHost: a\r\nX: y", false, 0, 0},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false, 0, 0},
		{"streamed", head + "abc", true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			if tc.stream {
				p.StreamBody = streamAll
			}
			c := newTestConn(p)
			buf := []byte(tc.in)
			if n, err := p.Input(c, buf); err != nil || n != 0 && !tc.stream {
				t.Fatalf("Input = %d, %v", n, err)
			}
			if tc.stream {
				p.Decode(c, buf[:len(head)])
				buf = buf[len(head):]
			}
			if got := p.PacketSize(c, buf); got != tc.want {
				t.Fatalf("PacketSize = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestOverloadReply: a shed connection is answered 503 with Retry-After
// and Connection: close, unless it owes an answer already.
func TestOverloadReply(t *testing.T) {
	p := New()
	c := newTestConn(p)
	if got := string(p.OverloadReply(c)); !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") ||
		!strings.Contains(got, "\r\nRetry-After: 5\r\n") || !strings.Contains(got, "\r\nConnection: close\r\n") {
		t.Fatalf("reply %q", got)
	}
	i := strings.Index(string(overloadReply), "\r\n\r\n")
	if n := len(overloadReply) - i - 4; !strings.Contains(string(overloadReply), fmt.Sprintf("Content-Length: %d\r\n", n)) {
		t.Fatalf("Content-Length does not match the body of %d bytes", n)
	}
	rt := &runtime{p: p, c: c}
	if err := rt.read(t, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab")); err != nil {
		t.Fatal(err)
	}
	if got := p.OverloadReply(c); got != nil {
		t.Fatalf("reply %q while the GET is owed its answer", got)
	}
}

// FuzzStreamBody: whatever the input and its reads, a request delivered
// whole without StreamBody is delivered the same (the body put back
// together from its pieces) with it.
func FuzzStreamBody(f *testing.F) {
	for i, s := range append(fuzzSeeds, streamCL+streamNext, streamChunked+streamNext) {
		f.Add([]byte(s), uint16(i*7), uint16(i*13))
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint16) {
		whole := newStreamRecorder(New())
		if err := whole.feed(t, data); err != nil {
			return // refused whole: streaming may differ (no 413)
		}
		a := int(s1) % (len(data) + 1)
		b := int(s2) % (len(data) + 1)
		if a > b {
			a, b = b, a
		}
		p := New()
		p.StreamBody = streamAll
		r := newStreamRecorder(p)
		if err := r.feed(t, data[:a], data[a:b], data[b:]); err != nil {
			var re *protocols.ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a reply error", err)
			}
			t.Fatalf("streamed: %v, whole: fine", err)
		}
		// Requests with a body were streamed (and say so); those without
		// were not: put side by side, they read the same.
		var got []string
		for _, s := range r.got {
			got = append(got, strings.TrimSuffix(s, " pieces>0=true"))
		}
		if strings.Join(got, "\n") != strings.Join(whole.got, "\n") {
			t.Fatalf("split %d, %d:\n%s\nwhole:\n%s", a, b, strings.Join(got, "\n"), strings.Join(whole.got, "\n"))
		}
	})
}

// TestStreamBodyPhase: while a streamed body is still arriving the
// connection is in the body phase (held to the body timeout and minimum
// rate), though its first pieces were delivered; once the body is done
// the answer is owed (busy); after the answer, idle.
func TestStreamBodyPhase(t *testing.T) {
	p := New()
	p.StreamBody = streamAll
	r := newStreamRecorder(p)
	r.rt.onMessage = func(req *Request, body []byte) {} // answers nothing
	half := streamCL[:len(streamCL)-10]
	if err := r.feed(t, []byte(half)); err != nil {
		t.Fatal(err)
	}
	if ph := p.Phase(r.rt.c, false); ph != protocols.PhaseBody {
		t.Fatalf("phase with a streamed body half received: %v, want PhaseBody", ph)
	}
	if err := r.feed(t, []byte(streamCL[len(half):])); err != nil {
		t.Fatal(err)
	}
	if ph := p.Phase(r.rt.c, false); ph != protocols.PhaseBusy {
		t.Fatalf("phase once the streamed body is done and unanswered: %v, want PhaseBusy", ph)
	}
}
