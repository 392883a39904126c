package http

import (
	"testing"

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
