package http

import (
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/protocols"
)

type recordLog struct{ got []AccessEntry }

func (r *recordLog) LogAccess(_ protocols.Conn, e *AccessEntry) { r.got = append(r.got, *e) }

var hello, created = []byte("hello, goer"), []byte(`{}`)

// serve frames, decodes and answers every request in in: Send for GETs,
// Respond 201 for the rest.
func serve(t testing.TB, p *Protocol, c *testConn, in []byte) {
	for off := 0; off < len(in); {
		n, err := p.Input(c, in[off:])
		if err != nil || n == 0 {
			t.Fatalf("Input = %d, %v", n, err)
		}
		if _, err := p.Decode(c, in[off:off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
		if string(RequestOf(c).MethodBytes()) == "GET" {
			if err := c.SendBytes(hello, false); err != nil {
				t.Fatal(err)
			}
		} else if err := Respond(c, &Response{Status: 201, Body: created}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAccessLogEntries: each answered request, pipelined, gives one entry
// with its method, target, status and sizes, in order.
func TestAccessLogEntries(t *testing.T) {
	rl := &recordLog{}
	p := &Protocol{AccessLog: rl}
	c := newTestConn(p)
	in := []byte(benchGet + benchPost + benchGet)
	serve(t, p, c, in)
	if len(rl.got) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(rl.got), rl.got)
	}
	want := []struct {
		method, path string
		status       int
	}{{"GET", "/index.html?user=42&lang=en", 200}, {"POST", "/api/items", 201}, {"GET", "/index.html?user=42&lang=en", 200}}
	var out int64
	for i, e := range rl.got {
		if e.Method != want[i].method || e.Path != want[i].path || e.Status != want[i].status || e.Duration < 0 || e.Start.IsZero() {
			t.Errorf("entry %d: %+v, want %v", i, e, want[i])
		}
		out += e.BytesOut
	}
	if rl.got[0].BytesIn != int64(len(benchGet)) || rl.got[1].BytesIn != int64(len(benchPost)) {
		t.Errorf("bytes_in %d, %d, want %d, %d", rl.got[0].BytesIn, rl.got[1].BytesIn, len(benchGet), len(benchPost))
	}
	if out != int64(len(c.out)) {
		t.Errorf("bytes_out sum %d, wrote %d", out, len(c.out))
	}
}

// TestAccessLogOffAllocs: with no AccessLog, answering (Send and Respond)
// allocates nothing.
func TestAccessLogOffAllocs(t *testing.T) {
	p := New()
	c := newTestConn(p)
	in := []byte(benchGet + benchPost)
	buf := make([]byte, len(in))
	serve(t, p, c, append(buf[:0], in...))
	if n := testing.AllocsPerRun(100, func() {
		c.out = c.out[:0]
		serve(t, p, c, append(buf[:0], in...))
	}); n != 0 {
		t.Fatalf("%v allocations per GET and POST answered with the access log off, want 0", n)
	}
}

// TestAccessLogStreamedBody: a request whose body is streamed to the
// handler in pieces has its entry (its head's size in), and the pipelined
// request after it keeps its own.
func TestAccessLogStreamedBody(t *testing.T) {
	rl := &recordLog{}
	p := &Protocol{AccessLog: rl, StreamBody: streamAll}
	r := newStreamRecorder(p)
	if err := r.feed(t, []byte(streamCL+streamNext)); err != nil {
		t.Fatal(err)
	}
	if len(rl.got) != 2 || rl.got[0].Method != "PUT" || rl.got[0].Path != "/up" || rl.got[1].Method != "GET" || rl.got[1].Path != "/next" {
		t.Fatalf("entries %+v", rl.got)
	}
	if head := int64(len(streamCL) - 26); rl.got[0].BytesIn != head {
		t.Errorf("streamed PUT: bytes_in %d, want its head's %d", rl.got[0].BytesIn, head)
	}
}

// TestAccessLogRefused: a request the protocol answers itself, without
// OnMessage, has its entry as an answered one does: the parser's refusals
// (400, 413, 414, 431, 505) with what was read of the request line, a
// timeout's 408 (head or body), a refused streamed body's (the request's
// own entry, taken out of the queue), a shed connection's 503. One entry
// each; bytes_out the reply's length.
func TestAccessLogRefused(t *testing.T) {
	errReply := func(e *Error) int { return len(e.Reply()) }
	for _, tc := range []struct {
		name         string
		reads        []string
		stream       bool
		timeout      protocols.Phase // after the reads: TimedOut in this phase
		overload     bool            // after the reads: OverloadReply
		status       int
		method, path string
		in           int64 // -1: the reads' length
		out          int
	}{
		{name: "bad method", reads: []string{"\x00GET / HTTP/1.1\r\n\r\n"}, status: 400, in: -1, out: errReply(errMethod)},
		{name: "bad version split", reads: []string{"NOT HT", "TP 0\x00\r\n\r\n"}, status: 400, method: "NOT", path: "HTTP",
			in: -1, out: errReply(errVersionSyntax)},
		{name: "too large", reads: []string{"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n"}, status: 413,
			method: "POST", path: "/up", in: -1, out: errReply(errTooLarge)},
		{name: "head too large", reads: []string{"GET /h HTTP/1.1\r\nX: " + strings.Repeat("x", DefaultMaxHeaderBytes) + "\r\n\r\n"},
			status: 431, method: "GET", path: "/h", in: -1, out: errReply(errHeaderTooLarge)},
		{name: "uri too long", reads: []string{"GET /" + strings.Repeat("u", DefaultMaxURIBytes) + " HTTP/1.1\r\n"}, status: 414,
			method: "GET", in: -1, out: errReply(errURITooLong)},
		{name: "version", reads: []string{"GET /v HTTP/2.0\r\nHost: a\r\n\r\n"}, status: 505, method: "GET", path: "/v",
			in: -1, out: errReply(errVersion)},
		{name: "head timeout", reads: []string{"GET /slow HTTP/1.1\r\nHo"}, timeout: protocols.PhaseHead, status: 408,
			method: "GET", path: "/slow", in: -1, out: len(timeoutReply)},
		{name: "head timeout before the target", reads: []string{"GE"}, timeout: protocols.PhaseHead, status: 408,
			in: -1, out: len(timeoutReply)},
		{name: "body timeout", reads: []string{"PUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab", "c"},
			timeout: protocols.PhaseBody, status: 408, method: "PUT", path: "/b", in: -1, out: len(timeoutReply)},
		{name: "streamed body timeout", reads: []string{streamCL[:len(streamCL)-10]}, stream: true, timeout: protocols.PhaseBody,
			status: 408, method: "PUT", path: "/up", in: int64(len(streamCL) - 26), out: len(timeoutReply)},
		{name: "streamed body bad chunk", reads: []string{"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello", "XY"},
			stream: true, status: 400, method: "POST", path: "/c", in: int64(len("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")), out: errReply(errChunkData)},
		{name: "shed", reads: []string{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nab"}, overload: true, status: 503,
			out: len(overloadReply)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rl := &recordLog{}
			p := &Protocol{AccessLog: rl}
			if tc.stream {
				p.StreamBody = streamAll
			}
			r := newStreamRecorder(p)
			r.rt.onMessage = func(*Request, []byte) {} // answers nothing
			var err error
			for _, rd := range tc.reads {
				if err = r.feed(t, []byte(rd)); err != nil {
					break
				}
			}
			switch {
			case tc.timeout != 0:
				if err != nil {
					t.Fatal(err)
				}
				if got := p.TimedOut(r.rt.c, tc.timeout); len(got) != tc.out {
					t.Fatalf("TimedOut: %q", got)
				}
			case tc.overload:
				if err != nil {
					t.Fatal(err)
				}
				if got := p.OverloadReply(r.rt.c); len(got) != tc.out {
					t.Fatalf("OverloadReply: %q", got)
				}
			default:
				if got := statusOf(t, err); got != tc.status {
					t.Fatalf("refused %d (%v), want %d", got, err, tc.status)
				}
			}
			if len(rl.got) != 1 {
				t.Fatalf("%d entries, want 1: %+v", len(rl.got), rl.got)
			}
			e := rl.got[0]
			if tc.in < 0 {
				tc.in = 0
				for _, rd := range tc.reads {
					tc.in += int64(len(rd))
				}
			}
			if e.Status != tc.status || e.Method != tc.method || e.Path != tc.path || e.BytesIn != tc.in ||
				e.BytesOut != int64(tc.out) || e.Start.IsZero() || e.Duration < 0 {
				t.Errorf("entry %+v, want %d %q %q in %d out %d", e, tc.status, tc.method, tc.path, tc.in, tc.out)
			}
		})
	}
}

// TestAccessLogRefusedStart: a refused request's entry starts at its
// first read, not at its refusal (nginx's request time of a 408 is the
// time the client took).
func TestAccessLogRefusedStart(t *testing.T) {
	rl := &recordLog{}
	p := &Protocol{AccessLog: rl}
	c := newTestConn(p)
	rt := &runtime{p: p, c: c}
	before := time.Now()
	if err := rt.read(t, []byte("GET /slow HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	p.TimedOut(c, protocols.PhaseHead)
	if len(rl.got) != 1 {
		t.Fatalf("entries %+v", rl.got)
	}
	if s := rl.got[0].Start; s.Before(before) || s.After(after) {
		t.Errorf("start %v, want between %v and %v (the first read)", s, before, after)
	}
	// The next request on a keep-alive connection starts afresh: a
	// request that came in two reads and was answered, then one that
	// stalls before its target.
	rl.got = nil
	c2 := newTestConn(p)
	rt2 := &runtime{p: p, c: c2, onMessage: func(*Request, []byte) { c2.SendBytes(hello, false) }}
	for _, rd := range []string{"GET /first HTTP/1.1\r\n", "Host: a\r\n\r\n"} {
		if err := rt2.read(t, []byte(rd)); err != nil {
			t.Fatal(err)
		}
	}
	second := time.Now()
	if err := rt2.read(t, []byte("GE")); err != nil {
		t.Fatal(err)
	}
	p.TimedOut(c2, protocols.PhaseHead)
	if len(rl.got) != 2 || rl.got[0].Path != "/first" {
		t.Fatalf("entries %+v", rl.got)
	}
	if e := rl.got[1]; e.Status != 408 || e.Path != "" || e.Method != "" || e.BytesIn != 2 || e.Start.Before(second) {
		t.Errorf("entry of the stalled second request %+v (read at %v): the first's start or line", e, second)
	}
}
