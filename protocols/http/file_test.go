package http

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	nethttp "net/http"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/goes-project/goes/internal/testkit"
)

// fileModTime is the modification time of the test files: its ETag is
// "<hex ns>-<hex size>".
var fileModTime = time.Date(2026, 11, 26, 10, 20, 30, 123456789, time.UTC)

func testFS(content []byte) fstest.MapFS {
	return fstest.MapFS{
		"f.txt":     {Data: content, ModTime: fileModTime},
		"embed.bin": {Data: content}, // no modification time, as embed.FS
		"dir/x":     {Data: []byte("x"), ModTime: fileModTime},
	}
}

// serveFileConn delivers req to a test connection whose OnMessage calls
// ServeFile for the file at the request's path in fsys; it returns what
// was written and ServeFile's error.
func serveFileConn(tb testing.TB, fsys fs.FS, req string, split int) (*testConn, error) {
	tb.Helper()
	p := New()
	c := newTestConn(p)
	var serveErr error
	rt := &runtime{p: p, c: c, release: true, onMessage: func(r *Request, _ []byte) {
		serveErr = ServeFile(c, fsys, strings.TrimPrefix(r.Path(), "/"))
	}}
	split = min(max(split, 0), len(req))
	for _, part := range []string{req[:split], req[split:]} {
		if err := rt.read(tb, []byte(part)); err != nil {
			tb.Fatalf("read: %v", err)
		}
	}
	return c, serveErr
}

// readResponse parses one response for method from wire.
func readResponse(tb testing.TB, wire []byte, method string) (*nethttp.Response, []byte) {
	tb.Helper()
	resp, err := nethttp.ReadResponse(bufio.NewReader(bytes.NewReader(wire)), &nethttp.Request{Method: method})
	if err != nil {
		tb.Fatalf("response %q: %v", wire, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("body of %q: %v", wire, err)
	}
	return resp, body
}

// TestServeFileWire checks status, fields and body of ServeFile's answers
// written in one go (files up to 64 KiB): conditional requests, ranges,
// If-Range, HEAD, HTTP/1.0, and the errors that write nothing.
func TestServeFileWire(t *testing.T) {
	content := testkit.Pattern(1000)
	fsys := testFS(content)
	etag := `"` + strconv.FormatInt(fileModTime.UnixNano(), 16) + `-3e8"`
	lastMod := fileModTime.Format(TimeFormat)
	before := fileModTime.Add(-time.Second).Format(TimeFormat)
	get := func(path string, fields ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(fields, "") + "\r\n"
	}
	tests := []struct {
		name   string
		req    string
		status int
		body   []byte
		fields map[string]string // "" value: absent
		closed bool
	}{
		{name: "whole", req: get("/f.txt"), status: 200, body: content, fields: map[string]string{
			"Content-Type": "text/plain; charset=utf-8", "Content-Length": "1000", "Accept-Ranges": "bytes",
			"Etag": etag, "Last-Modified": lastMod, "Connection": "keep-alive"}},
		{name: "no modification time", req: get("/embed.bin"), status: 200, body: content, fields: map[string]string{
			"Content-Type": "application/octet-stream", "Etag": "", "Last-Modified": ""}},
		{name: "range", req: get("/f.txt", "Range: bytes=100-199\r\n"), status: 206, body: content[100:200],
			fields: map[string]string{"Content-Range": "bytes 100-199/1000", "Content-Length": "100"}},
		{name: "range open", req: get("/f.txt", "Range: bytes=990-\r\n"), status: 206, body: content[990:],
			fields: map[string]string{"Content-Range": "bytes 990-999/1000"}},
		{name: "range suffix", req: get("/f.txt", "Range: bytes=-50\r\n"), status: 206, body: content[950:],
			fields: map[string]string{"Content-Range": "bytes 950-999/1000"}},
		{name: "range suffix longer than the file", req: get("/f.txt", "Range: BYTES = -5000\r\n"), status: 200, body: content},
		{name: "range clipped", req: get("/f.txt", "Range: bytes=999-5000\r\n"), status: 206, body: content[999:],
			fields: map[string]string{"Content-Range": "bytes 999-999/1000"}},
		{name: "range unsatisfiable", req: get("/f.txt", "Range: bytes=1000-\r\n"), status: 416, body: []byte{},
			fields: map[string]string{"Content-Range": "bytes */1000", "Content-Length": "0"}},
		{name: "range suffix zero", req: get("/f.txt", "Range: bytes=-0\r\n"), status: 416, body: []byte{}},
		{name: "several ranges", req: get("/f.txt", "Range: bytes=0-1,5-6\r\n"), status: 200, body: content},
		{name: "malformed range", req: get("/f.txt", "Range: bytes=5-1\r\n"), status: 200, body: content},
		{name: "other unit", req: get("/f.txt", "Range: items=0-1\r\n"), status: 200, body: content},
		{name: "if-range etag", req: get("/f.txt", "Range: bytes=0-9\r\n", "If-Range: "+etag+"\r\n"), status: 206, body: content[:10]},
		{name: "if-range date", req: get("/f.txt", "Range: bytes=0-9\r\n", "If-Range: "+lastMod+"\r\n"), status: 206, body: content[:10]},
		{name: "if-range stale", req: get("/f.txt", "Range: bytes=0-9\r\n", "If-Range: \"old\"\r\n"), status: 200, body: content},
		{name: "if-range weak", req: get("/f.txt", "Range: bytes=0-9\r\n", "If-Range: W/"+etag+"\r\n"), status: 200, body: content},
		{name: "if-range old date", req: get("/f.txt", "Range: bytes=0-9\r\n", "If-Range: "+before+"\r\n"), status: 200, body: content},
		{name: "if-none-match", req: get("/f.txt", "If-None-Match: \"x\", W/"+etag+"\r\n"), status: 304, body: []byte{},
			fields: map[string]string{"Etag": etag, "Last-Modified": lastMod, "Content-Length": "", "Content-Type": ""}},
		{name: "if-none-match star", req: get("/f.txt", "If-None-Match: *\r\n"), status: 304, body: []byte{}},
		{name: "if-none-match wins", req: get("/f.txt", "If-None-Match: \"x\"\r\n", "If-Modified-Since: "+lastMod+"\r\n"), status: 200, body: content},
		{name: "if-modified-since", req: get("/f.txt", "If-Modified-Since: "+lastMod+"\r\n"), status: 304, body: []byte{}},
		{name: "if-modified-since asctime", req: get("/f.txt", "If-Modified-Since: "+fileModTime.Format(time.ANSIC)+"\r\n"), status: 304, body: []byte{}},
		{name: "modified since", req: get("/f.txt", "If-Modified-Since: "+before+"\r\n"), status: 200, body: content},
		{name: "head", req: "HEAD /f.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n", status: 200, body: []byte{},
			fields: map[string]string{"Content-Length": "1000", "Content-Range": ""}},
		{name: "http/1.0", req: "GET /f.txt HTTP/1.0\r\n\r\n", status: 200, body: content,
			closed: true},
		{name: "http/1.0 keep-alive", req: "GET /f.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: content,
			fields: map[string]string{"Connection": "keep-alive"}},
		{name: "connection close", req: get("/f.txt", "Connection: close\r\n"), status: 200, body: content,
			closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, split := range []int{len(tt.req), 7} {
				c, err := serveFileConn(t, fsys, tt.req, split)
				if err != nil {
					t.Fatalf("ServeFile: %v", err)
				}
				method, _, _ := strings.Cut(tt.req, " ")
				resp, body := readResponse(t, c.raw, method)
				if resp.StatusCode != tt.status || !bytes.Equal(body, tt.body) {
					t.Fatalf("status %d, body of %d bytes; want %d, %d bytes\n%q", resp.StatusCode, len(body), tt.status, len(tt.body), c.raw)
				}
				for k, v := range tt.fields {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("%s: %q, want %q", k, got, v)
					}
				}
				if resp.Close != tt.closed || c.closed != tt.closed || c.paused {
					t.Errorf("closed %v (want %v), paused %v", c.closed, tt.closed, c.paused)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			req  string
			want error
		}{
			{get("/missing"), fs.ErrNotExist},
			{get("/dir"), ErrIsDir},
			{get("/."), ErrIsDir},
			{"POST /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", ErrFileMethod},
		} {
			c, err := serveFileConn(t, fsys, tt.req, 0)
			if !errors.Is(err, tt.want) {
				t.Errorf("%q: %v, want %v", tt.req, err, tt.want)
			}
			if len(c.raw) != 0 || c.paused || c.closed {
				t.Errorf("%q: wrote %q, paused %v, closed %v", tt.req, c.raw, c.paused, c.closed)
			}
		}
		if err := ServeFile(newTestConn(New()), fsys, "f.txt"); !errors.Is(err, ErrNoRequest) {
			t.Errorf("without a request: %v", err)
		}
	})
}

// FuzzServeFileRange serves files of 0..299 bytes with any Range (and
// If-Range) over a request split across two reads, and checks the answer
// against parseRange and the invariants of RFC 9110: 206 only for one
// range with 0 <= start <= end < size, its body that slice of the file
// and Content-Range naming it; 416 with "bytes */size"; otherwise the
// whole file with 200.
func FuzzServeFileRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-0", "bytes=100-199", "bytes=-50", "bytes=5-", "bytes=-0", "bytes=300-", "bytes=0-1,2-3",
		"bytes=9223372036854775807-", "bytes=-99999999999999999999", "bytes=1-99999999999999999999",
		" Bytes = 3-4 ", "bytes=4-3", "bytes=", "bytes=-", "bytes=a-b", "items=0-1", "",
	} {
		f.Add(s, uint16(200), 10, false)
	}
	f.Add("bytes=0-10", uint16(0), 30, true)
	f.Fuzz(func(t *testing.T, rangeValue string, size uint16, split int, withIfRange bool) {
		n := int(size % 300)
		content := testkit.Pattern(n)
		fsys := fstest.MapFS{"f": {Data: content, ModTime: fileModTime}}
		// The same checks hold for the parser alone.
		start, end, kind := parseRange([]byte(rangeValue), int64(n))
		if kind == rangeOK && !(0 <= start && start <= end && end < int64(n)) {
			t.Fatalf("parseRange(%q, %d) = %d, %d", rangeValue, n, start, end)
		}
		if kind == rangeOK && strings.Contains(rangeValue, ",") {
			t.Fatalf("parseRange(%q) accepted several ranges", rangeValue)
		}
		ifRange := ""
		if withIfRange {
			ifRange = "If-Range: \"stale\"\r\n"
			kind = rangeIgnored
		}
		req := "GET /f HTTP/1.1\r\nHost: x\r\nRange: " + rangeValue + "\r\n" + ifRange + "\r\n"
		var probe Request
		if _, err := ParseRequest([]byte(req), &probe, Limits{}); err != nil {
			return // not a valid request: the protocol answers 400 itself
		}
		if v, _ := probe.HeaderBytes("Range"); string(v) != strings.Trim(rangeValue, " \t") {
			return
		}
		c, err := serveFileConn(t, fsys, req, split)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := readResponse(t, c.raw, "GET")
		switch kind {
		case rangeOK:
			want := fmt.Sprintf("bytes %d-%d/%d", start, end, n)
			if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != want || !bytes.Equal(body, content[start:end+1]) {
				t.Fatalf("%q: %d %q, %d bytes; want 206 %q", rangeValue, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), want)
			}
		case rangeUnsatisfiable:
			if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) || len(body) != 0 {
				t.Fatalf("%q: %d %q", rangeValue, resp.StatusCode, resp.Header.Get("Content-Range"))
			}
		default:
			if resp.StatusCode != 200 || !bytes.Equal(body, content) || resp.Header.Get("Content-Range") != "" {
				t.Fatalf("%q: %d, %d bytes", rangeValue, resp.StatusCode, len(body))
			}
		}
	})
}
