package http

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"regexp"
	"strings"
	"testing"
	"time"
)

var dateLine = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// normDate replaces the Date field value by "D".
func normDate(s string) string { return dateLine.ReplaceAllString(s, "\r\nDate: D\r\n") }

// streamConn returns a connection that has received req (and whatever
// follows it) and is owed its answer.
func streamConn(tb testing.TB, req string, draining bool) (*runtime, *testConn) {
	tb.Helper()
	p := New()
	c := newTestConn(p)
	c.draining = draining
	rt := &runtime{p: p, c: c, release: true}
	if err := rt.read(tb, []byte(req)); err != nil {
		tb.Fatal(err)
	}
	return rt, c
}

// TestStreamWire checks the exact bytes of streamed responses: chunk sizes
// in hex, CRLFs, the last chunk and trailers; HTTP/1.0 unframed with a
// close; HEAD and 204 head only; closing requests and draining.
func TestStreamWire(t *testing.T) {
	big := strings.Repeat("x", 255)
	writes := []string{"a", "", "0123456789", big}
	chunked := "1\r\na\r\na\r\n0123456789\r\nff\r\n" + big + "\r\n"
	tests := []struct {
		name     string
		req      string
		draining bool
		resp     Response
		trailers []Field
		want     string // with Date: D
		closed   bool   // End closes the connection
	}{
		{
			name: "http/1.1 chunked with trailers", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
			resp:     Response{ContentType: "text/plain", Header: []Field{{"Trailer", "X-Sum"}}, Body: []byte("first")},
			trailers: []Field{{"X-Sum", "42"}, {"X-Other", "b c"}},
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/plain\r\nTrailer: X-Sum\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n5\r\nfirst\r\n" + chunked +
				"0\r\nX-Sum: 42\r\nX-Other: b c\r\n\r\n",
		},
		{
			name: "http/1.1 status and no trailers", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
			resp: Response{Status: 201},
			want: "HTTP/1.1 201 Created\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n" + chunked + "0\r\n\r\n",
		},
		{
			name: "http/1.1 connection close", req: "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked + "0\r\n\r\n",
			closed: true,
		},
		{
			name: "response close", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", resp: Response{Close: true},
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked + "0\r\n\r\n",
			closed: true,
		},
		{
			name: "draining", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", draining: true,
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked + "0\r\n\r\n",
			closed: true,
		},
		{
			name: "http/1.0 unframed", req: "GET / HTTP/1.0\r\n\r\n", trailers: []Field{{"X-Sum", "1"}},
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Connection: close\r\n\r\na0123456789" + big,
			closed: true,
		},
		{
			name: "http/1.0 keep-alive still closes", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			resp: Response{Body: []byte("0")},
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Connection: close\r\n\r\n0a0123456789" + big,
			closed: true,
		},
		{
			name: "head", req: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", resp: Response{Body: []byte("dropped")},
			trailers: []Field{{"X-Sum", "1"}},
			want: "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/html; charset=utf-8\r\n" +
				"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
		},
		{
			name: "204", req: "GET / HTTP/1.1\r\nHost: x\r\n\r\n", resp: Response{Status: 204},
			want: "HTTP/1.1 204 No Content\r\nServer: goes\r\nDate: D\r\nConnection: keep-alive\r\n\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, c := streamConn(t, tc.req, tc.draining)
			w, err := Stream(c, &tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			if !c.paused {
				t.Fatal("Stream did not pause reading")
			}
			for _, s := range writes {
				if err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			// The runtime offers the state back while the stream is open.
			if err := rt.read(t, nil); err != nil {
				t.Fatal(err)
			}
			if c.state == nil {
				t.Fatal("state released while streaming")
			}
			if err := w.End(tc.trailers...); err != nil {
				t.Fatal(err)
			}
			if got := normDate(string(c.raw)); got != tc.want {
				t.Fatalf("wire:\n%q\nwant\n%q", got, tc.want)
			}
			if c.closed != tc.closed || c.paused != tc.closed {
				t.Fatalf("closed=%v paused=%v, want closed=%v", c.closed, c.paused, tc.closed)
			}
			if err := w.Write([]byte("late")); !errors.Is(err, ErrStreamEnded) {
				t.Fatalf("Write after End: %v", err)
			}
			if err := w.End(); !errors.Is(err, ErrStreamEnded) {
				t.Fatalf("End after End: %v", err)
			}
			if !tc.closed {
				c.raw = nil
				if err := rt.read(t, nil); err != nil {
					t.Fatal(err)
				}
				if c.state != nil {
					t.Fatal("state kept after the stream ended")
				}
			}
		})
	}
}

// TestStreamRefusals: answers while a stream is open, invalid trailers and
// a connection without request.
func TestStreamRefusals(t *testing.T) {
	rt, c := streamConn(t, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", false)
	if _, err := Stream(newTestConn(rt.p), &Response{}); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("Stream without request: %v", err)
	}
	if _, err := Stream(c, &Response{Header: []Field{{"Content-Length", "1"}}}); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("Stream with Content-Length: %v", err)
	}
	w, err := Stream(c, &Response{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Stream(c, &Response{}); !errors.Is(err, ErrStreamOpen) {
		t.Fatalf("second Stream: %v", err)
	}
	if err := Respond(c, &Response{}); !errors.Is(err, ErrStreamOpen) {
		t.Fatalf("Respond: %v", err)
	}
	if err := c.SendBytes([]byte("x"), false); !errors.Is(err, ErrStreamOpen) {
		t.Fatalf("Send: %v", err)
	}
	for _, f := range []Field{{"X-Bad", "a\r\nb"}, {"", "v"}, {"Transfer-Encoding", "chunked"}, {"Bad Name", "v"}} {
		if err := w.End(f); !errors.Is(err, ErrBadResponse) {
			t.Fatalf("End(%q): %v", f, err)
		}
	}
	if err := w.Write([]byte("still open")); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	// The refused answers did not take the second request's turn.
	c.raw = nil
	if err := Respond(c, &Response{Body: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(c.out), "\r\n\r\ntwo") {
		t.Fatalf("answer to the second request: %q", c.out)
	}
}

// failConn fails WriteRaw with err.
type failConn struct {
	*testConn
	err error
}

func (c *failConn) WriteRaw(b []byte) error {
	if c.err != nil {
		return c.err
	}
	return c.testConn.WriteRaw(b)
}

// TestStreamSendErrors: a head that cannot be queued starts nothing and
// leaves the request owed; a piece or an End that cannot be queued leaves
// the stream intact for a retry.
func TestStreamSendErrors(t *testing.T) {
	_, tc := streamConn(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
	full := errors.New("full")
	c := &failConn{testConn: tc, err: full}
	if _, err := Stream(c, &Response{}); !errors.Is(err, full) {
		t.Fatalf("Stream: %v", err)
	}
	if tc.paused {
		t.Fatal("reading still paused after a failed Stream")
	}
	c.err = nil
	w, err := Stream(c, &Response{})
	if err != nil {
		t.Fatalf("Stream again: %v", err)
	}
	c.err = full
	if err := w.Write([]byte("lost")); !errors.Is(err, full) {
		t.Fatalf("Write: %v", err)
	}
	if err := w.End(); !errors.Is(err, full) {
		t.Fatalf("End: %v", err)
	}
	c.err = nil
	if err := w.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	resp := string(tc.raw)
	if !strings.HasSuffix(resp, "\r\n\r\n4\r\nkept\r\n0\r\n\r\n") || strings.Count(resp, "HTTP/1.1 200") != 1 {
		t.Fatalf("wire: %q", resp)
	}
}

// chunkedBody returns the body of the one chunked response in wire.
func chunkedBody(tb testing.TB, wire []byte) []byte {
	tb.Helper()
	i := bytes.Index(wire, []byte("\r\n\r\n"))
	if i < 0 {
		tb.Fatalf("no head in %q", wire)
	}
	body, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(wire[i+4:]))))
	if err != nil {
		tb.Fatalf("chunked body of %q: %v", wire, err)
	}
	return body
}

// FuzzStreamChunks writes data cut at the given points as pieces of a
// stream and checks that a chunked reader gets data back.
func FuzzStreamChunks(f *testing.F) {
	f.Add([]byte("hello, streamed world"), []byte{3, 0, 7})
	f.Add(bytes.Repeat([]byte{0xff}, 300), []byte{255, 16, 1})
	f.Add([]byte("0\r\n\r\n"), []byte{1})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		_, c := streamConn(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
		w, err := Stream(c, &Response{})
		if err != nil {
			t.Fatal(err)
		}
		rest := data
		for _, n := range cuts {
			n := min(int(n), len(rest))
			if err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Write(rest); err != nil {
			t.Fatal(err)
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
		if got := chunkedBody(t, c.raw); !bytes.Equal(got, data) {
			t.Fatalf("body %q, want %q", got, data)
		}
	})
}

// sseEvent is what a client dispatches.
type sseEvent struct {
	typ, data, lastID string
}

// sseDecoder decodes text/event-stream as the HTML standard's event
// stream interpretation does, fed in pieces of any size.
type sseDecoder struct {
	pending   []byte // an unfinished line
	sawCR     bool   // the last piece ended in CR: a following LF belongs to it
	data      []byte
	hasData   bool
	typ       string
	lastID    string
	retry     time.Duration
	events    []sseEvent
	firstByte bool
}

func (d *sseDecoder) feed(p []byte) {
	for _, b := range p {
		if d.sawCR {
			d.sawCR = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\r':
			d.sawCR = true
			d.line(string(d.pending))
			d.pending = d.pending[:0]
		case '\n':
			d.line(string(d.pending))
			d.pending = d.pending[:0]
		default:
			d.pending = append(d.pending, b)
		}
	}
}

func (d *sseDecoder) line(l string) {
	if l == "" {
		if d.hasData {
			typ := d.typ
			if typ == "" {
				typ = "message"
			}
			data := string(d.data)
			data = strings.TrimSuffix(data, "\n")
			d.events = append(d.events, sseEvent{typ: typ, data: data, lastID: d.lastID})
		}
		d.data, d.hasData, d.typ = d.data[:0], false, ""
		return
	}
	if l[0] == ':' {
		return
	}
	name, value, _ := strings.Cut(l, ":")
	value = strings.TrimPrefix(value, " ")
	switch name {
	case "event":
		d.typ = value
	case "data":
		d.data = append(d.data, value...)
		d.data = append(d.data, '\n')
		d.hasData = true
	case "id":
		if !strings.Contains(value, "\x00") {
			d.lastID = value
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			d.retry = time.Duration(ms) * time.Millisecond
		}
	}
}

func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// normLines is data with CRLF and CR turned into LF, as a client sees it.
func normLines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// FuzzSSEEncode encodes an event (and a comment) and decodes the stream
// with sseDecoder, fed in pieces cut at split: the client must see the
// event's type, data (line ends normalized to LF), id and retry.
func FuzzSSEEncode(f *testing.F) {
	f.Add("7", "update", "line1\nline2\r\nline3\rline4", int64(1500), "ping", uint8(3))
	f.Add("", "", "", int64(0), "", uint8(1))
	f.Add("id", "", "\n\n", int64(0), "", uint8(0))
	f.Add("", "", " leading space\r", int64(0), "", uint8(2))
	f.Add("only-id", "", "", int64(250), "", uint8(5))
	f.Add("bad\nid", "e", "d", int64(0), "c", uint8(1))
	f.Fuzz(func(t *testing.T, id, typ, data string, retryMS int64, comment string, split uint8) {
		ev := Event{ID: id, Event: typ, Data: data, Retry: time.Duration(retryMS) * time.Millisecond}
		_, c := streamConn(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
		s, err := SSE(c)
		if err != nil {
			t.Fatal(err)
		}
		cerr := s.Comment(comment)
		if strings.ContainsAny(comment, "\r\n") != errors.Is(cerr, ErrBadEvent) {
			t.Fatalf("Comment(%q): %v", comment, cerr)
		}
		err = s.Send(ev)
		bad := strings.ContainsAny(id, "\r\n\x00") || strings.ContainsAny(typ, "\r\n") || ev.Retry < 0
		if bad {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("Send(%+v): %v, want ErrBadEvent", ev, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.End(); err != nil {
			t.Fatal(err)
		}
		body := chunkedBody(t, c.raw)
		var d sseDecoder
		step := int(split)%7 + 1
		for len(body) > 0 {
			n := min(step, len(body))
			d.feed(body[:n])
			body = body[n:]
		}
		if len(d.pending) != 0 {
			t.Fatalf("stream ends inside a line: %q", d.pending)
		}
		if d.lastID != id {
			t.Fatalf("last id %q, want %q", d.lastID, id)
		}
		if ev.Retry > 0 && d.retry != time.Duration(ev.Retry.Milliseconds())*time.Millisecond {
			t.Fatalf("retry %v, want %v", d.retry, ev.Retry)
		}
		controlOnly := data == "" && typ == "" && (id != "" || ev.Retry > 0)
		if controlOnly {
			if len(d.events) != 0 {
				t.Fatalf("control-only event dispatched %+v", d.events)
			}
			return
		}
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		want := sseEvent{typ: wantType, data: normLines(data), lastID: id}
		if len(d.events) != 1 || d.events[0] != want {
			t.Fatalf("events %+v, want [%+v]", d.events, want)
		}
	})
}

// TestSSEWire checks the exact bytes of an event stream.
func TestSSEWire(t *testing.T) {
	_, c := streamConn(t, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", false)
	s, err := SSE(c, Field{"X-Feed", "news"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{
		{ID: "1", Data: "hello", Retry: 2 * time.Second},
		{Event: "multi", Data: "a\r\nb\nc\r"},
		{},
	} {
		if err := s.Send(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Comment("keep-alive"); err != nil {
		t.Fatal(err)
	}
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	ev1 := "id: 1\nretry: 2000\ndata: hello\n\n"
	ev2 := "event: multi\ndata: a\ndata: b\ndata: c\ndata:\n\n"
	want := "HTTP/1.1 200 OK\r\nServer: goes\r\nDate: D\r\nContent-Type: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\nX-Feed: news\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n" +
		"1f\r\n" + ev1 + "\r\n" + "2c\r\n" + ev2 + "\r\n" + "7\r\ndata:\n\n\r\n" + "d\r\n: keep-alive\n\r\n" + "0\r\n\r\n"
	if got := normDate(string(c.raw)); got != want {
		t.Fatalf("wire:\n%q\nwant\n%q", got, want)
	}
}
