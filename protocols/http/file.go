package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of ServeFile: nothing was written, the request is still owed an
// answer (404, 403, 405... as the caller sees fit).
var (
	// ErrIsDir is returned by ServeFile for a directory.
	ErrIsDir = errors.New("http: file is a directory")
	// ErrFileMethod is returned by ServeFile for a request whose method is
	// neither GET nor HEAD.
	ErrFileMethod = errors.New("http: a file answers GET and HEAD only")
)

// filePiece is the size of the pieces a file body is read and queued in,
// and the largest body ServeFile writes in one go from the calling
// goroutine.
const filePiece = 64 << 10

// headRoom is the room kept before a piece for the response head, so that
// a small file's head and body go out in one write.
const headRoom = 1 << 10

// piecePool holds the buffers of file bodies: headRoom plus filePiece
// bytes.
var piecePool = sync.Pool{New: func() any {
	b := make([]byte, headRoom+filePiece)
	return &b
}}

// fileSenders counts the goroutines sending file bodies (for the tests).
var fileSenders atomic.Int64

// ServeFile answers the oldest unanswered request on c, which must be the
// request being delivered (call it inside OnMessage, its earlier requests
// answered), with the file name of fsys. name is a path as fs.ValidPath
// wants it (slash-separated, unrooted, no "." or ".." elements); a request
// path p maps to it safely with
//
//	name := strings.TrimPrefix(path.Clean("/"+p), "/")
//	if name == "" {
//		name = "." // the root directory: ErrIsDir
//	}
//
// (path.Clean of a rooted path removes every "..", so the name cannot
// leave fsys; os.DirFS and fs.Sub refuse invalid names as well).
//
// GET and HEAD are answered with Content-Type from the name's extension
// (mime.TypeByExtension, else application/octet-stream), Content-Length,
// Accept-Ranges: bytes, and, when the file's modification time is known
// (not zero nor the Unix epoch, as embed.FS files have), Last-Modified and
// a strong ETag made of the modification time in nanoseconds and the size
// ("<hex ns>-<hex size>", like nginx's with sub-second time): it changes
// whenever either does, which is what a file written in place gives.
//
// Conditional requests: If-None-Match (weak comparison, "*" matches) or,
// without it, If-Modified-Since (at second precision) get 304 Not
// Modified with no body. Range, for GET only: a single byte range
// ("bytes=a-b", "bytes=a-", "bytes=-n") gets 206 Partial Content with
// Content-Range; a range that starts past the end (or "bytes=-0", or any
// range of an empty file) gets 416 with "Content-Range: bytes */size";
// several ranges, another unit or a malformed value get the whole file
// with 200, as RFC 9110 allows. If-Range (an ETag, compared strongly, or
// the exact Last-Modified date) that does not match makes the range
// ignored: 200 with the whole file. If-Match and If-Unmodified-Since are
// not evaluated.
//
// A body up to 64 KiB is read and queued with the head by ServeFile, as
// Respond does. A larger one is sent by a goroutine ServeFile starts: it
// reads the file in 64 KiB pieces and queues each once the send buffer
// has room, waiting for it to drain when it is full (the connections of
// goes have a WaitDrained method; connections.WaitDrained documents it),
// so that the memory a download holds stays below the connection's
// MaxSendBufferSize plus one piece however large the file (a connection
// of another kind, without that method, is polled: its SendBufferLen,
// after each piece its buffer refused). While that body is sent, c reads
// nothing more (as with Stream: a pipelined
// request is answered after the file, in order; Respond, Send and Stream
// fail with ErrStreamOpen meanwhile); once it is sent c reads again, or
// closes when the request (HTTP/1.0 without keep-alive, Connection:
// close) or the draining worker ends it. The file is closed when the body
// is sent or the connection goes away. Should the file end early or fail
// to read, or a piece fail to queue for another reason, the connection is
// closed: the client sees a body shorter than its Content-Length.
//
// ServeFile returns once the response has started (its head is queued),
// never waiting for the send buffer, so it may be called on the event
// loop. Errors, after which nothing was written and the request is still
// owed an answer: one wrapping fs.ErrNotExist (or fs.ErrPermission, ...)
// when name cannot be opened or stat'ed, ErrIsDir for a directory,
// ErrFileMethod, ErrNoRequest when c has received no HTTP request,
// ErrStreamOpen, an error of seeking or reading the file, or the error of
// c.WriteRaw when the response could not be queued (the send buffer full
// of earlier answers: connections.ErrSendBufferFull).
func ServeFile(c StreamConn, fsys fs.FS, name string) error {
	st, ok := c.State().(*connState)
	if !ok {
		return ErrNoRequest
	}
	r := &st.req
	isGet := string(r.MethodBytes()) == "GET"
	if !isGet && string(r.MethodBytes()) != "HEAD" {
		return fmt.Errorf("%w: %s", ErrFileMethod, r.Method())
	}
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("http: serve file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("http: serve file: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return fmt.Errorf("%w: %s", ErrIsDir, name)
	}
	size := fi.Size()
	if size < 0 {
		size = 0
	}

	// Validators and the fields every answer carries.
	var extraBuf [192]byte
	extra := extraBuf[:0]
	mod := fi.ModTime()
	hasMod := !mod.IsZero() && !mod.Equal(time.Unix(0, 0))
	var etagBuf [40]byte
	var etag []byte
	if hasMod {
		mod = mod.UTC()
		etag = append(etagBuf[:0], '"')
		etag = strconv.AppendUint(etag, uint64(mod.UnixNano()), 16)
		etag = append(etag, '-')
		etag = strconv.AppendUint(etag, uint64(size), 16)
		etag = append(etag, '"')
		extra = append(extra, "Last-Modified: "...)
		extra = mod.AppendFormat(extra, TimeFormat)
		extra = append(extra, "\r\nETag: "...)
		extra = append(extra, etag...)
		extra = append(extra, "\r\n"...)
	}

	status, start, n := 200, int64(0), size
	if notModified(r, etag, mod, hasMod) {
		status, n = 304, 0
	} else {
		extra = append(extra, "Accept-Ranges: bytes\r\n"...)
		if h, ok := r.HeaderBytes("Range"); ok && isGet && ifRange(r, etag, mod, hasMod) {
			a, b, kind := parseRange(h, size)
			switch kind {
			case rangeOK:
				status, start, n = 206, a, b-a+1
				extra = append(extra, "Content-Range: bytes "...)
				extra = strconv.AppendInt(extra, a, 10)
				extra = append(extra, '-')
				extra = strconv.AppendInt(extra, b, 10)
				extra = append(extra, '/')
				extra = strconv.AppendInt(extra, size, 10)
				extra = append(extra, "\r\n"...)
			case rangeUnsatisfiable:
				status, n = 416, 0
				extra = append(extra, "Content-Range: bytes */"...)
				extra = strconv.AppendInt(extra, size, 10)
				extra = append(extra, "\r\n"...)
			}
		}
	}
	ctype := "text/plain; charset=utf-8" // of 416's empty body
	if status != 416 {
		ctype = mime.TypeByExtension(path.Ext(name))
		if ctype == "" || !validValue(ctype) {
			ctype = "application/octet-stream"
		}
	}

	// The body, from start, n bytes (none for HEAD).
	var body io.Reader
	if isGet && n > 0 {
		if body, err = seekTo(f, start); err != nil {
			f.Close()
			return fmt.Errorf("http: serve file %s: %w", name, err)
		}
	} else {
		n = 0
	}
	a := &answer{status: status, ctype: ctype, extra: extra, frame: frameSized, size: n}
	if !isGet {
		a.size = size // HEAD: the GET's Content-Length
	}
	if n <= filePiece {
		err := writeWhole(c, st, a, body)
		f.Close()
		return err
	}

	var date [29]byte
	w, m, err := beginStream(c, st, &date)
	if err != nil {
		f.Close()
		return err
	}
	w.keep = m&mKeep != 0 && !c.Draining()
	w.frame = frameSized
	a.keep, a.date = w.keep, date[:]
	head := st.p.appendResponse(make([]byte, 0, 256+len(extra)), a)
	if err := c.WriteRaw(head); err != nil {
		w.unbegin(m)
		f.Close()
		return err
	}
	if st.p.AccessLog != nil {
		size := int64(len(head))
		if m&mHead == 0 {
			size += n
		}
		st.p.logAccess(c, w.acc, a.status, size)
	}
	s := &fileSender{w: w, f: f, body: body, n: n}
	if dw, ok := c.(drainWaiter); ok {
		s.wait = dw.WaitDrained
	}
	fileSenders.Add(1)
	go s.run()
	return nil
}

// writeWhole queues the response a, whose body (a.size bytes, none for
// HEAD) is read from body, in one write, as Respond would.
func writeWhole(c StreamConn, st *connState, a *answer, body io.Reader) error {
	bp := piecePool.Get().(*[]byte)
	defer piecePool.Put(bp)
	buf := *bp
	n := 0
	if body != nil {
		n = int(a.size)
		if _, err := io.ReadFull(body, buf[headRoom:headRoom+n]); err != nil {
			return fmt.Errorf("http: serve file: %w", err)
		}
	}
	var date [29]byte
	var e AccessEntry
	st.mu.Lock()
	m, err := st.takeAnswer(&date, &e)
	st.mu.Unlock()
	if err != nil {
		return err
	}
	a.keep, a.date = m&mKeep != 0 && !c.Draining(), date[:]
	var headBuf [headRoom]byte
	head := st.p.appendResponse(headBuf[:0], a)
	var out []byte
	if len(head) <= headRoom {
		out = buf[headRoom-len(head) : headRoom+n]
		copy(out, head)
	} else {
		out = append(head, buf[headRoom:headRoom+n]...)
	}
	if m&mHead != 0 {
		out = out[:len(head)]
	}
	if err := c.WriteRaw(out); err != nil {
		st.mu.Lock()
		st.unpop(m)
		if st.p.AccessLog != nil {
			st.unpopAccess(e)
		}
		st.mu.Unlock()
		return err
	}
	if st.p.AccessLog != nil {
		st.p.logAccess(c, e, a.status, int64(len(out)))
	}
	if !a.keep {
		c.Close()
	}
	return nil
}

// seekTo returns a reader of f from offset start.
func seekTo(f fs.File, start int64) (io.Reader, error) {
	if start == 0 {
		return f, nil
	}
	if s, ok := f.(io.Seeker); ok {
		if _, err := s.Seek(start, io.SeekStart); err != nil {
			return nil, err
		}
		return f, nil
	}
	if ra, ok := f.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, start, math.MaxInt64-start), nil
	}
	if _, err := io.CopyN(io.Discard, f, start); err != nil {
		return nil, err
	}
	return f, nil
}

// drainWaiter is a connection that can wait for its full send buffer to
// drain: those of the connections package (see connections.WaitDrained),
// which this package cannot import.
type drainWaiter interface {
	WaitDrained(ctx context.Context) error
}

// fileSender sends a file body of more than one piece from a goroutine of
// its own.
type fileSender struct {
	w    *StreamWriter
	f    fs.File
	body io.Reader // f from the first byte to send
	n    int64     // bytes to send
	wait func(context.Context) error
}

func (s *fileSender) run() {
	defer fileSenders.Add(-1)
	defer s.f.Close()
	bp := piecePool.Get().(*[]byte)
	defer piecePool.Put(bp)
	buf := (*bp)[:filePiece]
	ctx := context.Background()
	for s.n > 0 {
		p := buf[:min(s.n, filePiece)]
		if _, err := io.ReadFull(s.body, p); err != nil || !s.send(ctx, p) {
			s.w.abort()
			return
		}
		s.n -= int64(len(p))
	}
	s.w.End()
}

// send queues p once the send buffer has room; false when it cannot (the
// connection is gone).
func (s *fileSender) send(ctx context.Context, p []byte) bool {
	for failed := 0; failed < 3; failed++ {
		switch {
		case s.wait != nil:
			if s.wait(ctx) != nil {
				return false
			}
		case failed > 0:
			if !pollDrained(s.w.c) {
				return false
			}
		}
		if s.w.c.WriteRaw(p) == nil {
			return true
		}
	}
	return false
}

// pollDrained waits, polling, until c's send buffer is empty; false when
// c cannot tell.
func pollDrained(c StreamConn) bool {
	lc, ok := c.(interface{ SendBufferLen() int })
	if !ok {
		return false
	}
	for d := time.Millisecond; lc.SendBufferLen() > 0; d = min(2*d, 32*time.Millisecond) {
		time.Sleep(d)
	}
	return true
}

// abort ends a response whose body cannot be completed: the connection
// closes (once what is queued is written).
func (w *StreamWriter) abort() {
	w.mu.Lock()
	if w.ended {
		w.mu.Unlock()
		return
	}
	w.ended = true
	st := w.st
	w.st = nil
	w.mu.Unlock()
	st.mu.Lock()
	st.stream = nil
	st.mu.Unlock()
	w.c.Close()
}

// notModified evaluates If-None-Match, or else If-Modified-Since.
func notModified(r *Request, etag []byte, mod time.Time, hasMod bool) bool {
	if v, ok := r.HeaderBytes("If-None-Match"); ok {
		return etagListMatch(v, etag)
	}
	if v, ok := r.HeaderBytes("If-Modified-Since"); ok && hasMod {
		t, ok := parseHTTPDate(v)
		return ok && !mod.Truncate(time.Second).After(t)
	}
	return false
}

// ifRange reports whether the Range of r is to be used: no If-Range, or
// one that matches the file strongly (its ETag, or exactly its
// Last-Modified).
func ifRange(r *Request, etag []byte, mod time.Time, hasMod bool) bool {
	v, ok := r.HeaderBytes("If-Range")
	if !ok {
		return true
	}
	v = trimOWS(v)
	if len(v) > 0 && (v[0] == '"' || v[0] == 'W') {
		return len(etag) > 0 && string(v) == string(etag)
	}
	t, ok := parseHTTPDate(v)
	return ok && hasMod && t.Equal(mod.Truncate(time.Second))
}

// etagListMatch reports whether the If-None-Match list v holds "*" or an
// entity tag weakly equal to etag.
func etagListMatch(v, etag []byte) bool {
	for rest := v; len(rest) > 0; {
		var e []byte
		e, rest = nextListElem(rest)
		if string(e) == "*" {
			return true
		}
		if len(e) > 2 && e[0] == 'W' && e[1] == '/' {
			e = e[2:]
		}
		if len(etag) > 0 && string(e) == string(etag) {
			return true
		}
	}
	return false
}

// The date formats a recipient must accept (RFC 9110, 5.6.7).
var httpDateLayouts = [...]string{TimeFormat, "Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan _2 15:04:05 2006"}

func parseHTTPDate(v []byte) (time.Time, bool) {
	s := strings.TrimSpace(string(v))
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Outcomes of parseRange.
const (
	rangeIgnored       = iota // no usable single range: the whole file, 200
	rangeOK                   // one satisfiable range: 206
	rangeUnsatisfiable        // 416
)

// parseRange parses a Range field value for a representation of size
// bytes. For rangeOK, 0 <= start <= end < size: the range is
// [start, end], clipped to the representation.
func parseRange(v []byte, size int64) (start, end int64, kind int) {
	v = trimOWS(v)
	if len(v) < 6 || !equalFold(v[:6], "bytes=") {
		return 0, 0, rangeIgnored
	}
	spec := trimOWS(v[6:])
	dash := -1
	for i, ch := range spec {
		if ch == ',' {
			return 0, 0, rangeIgnored // several ranges
		}
		if ch == '-' && dash < 0 {
			dash = i
		}
	}
	if dash < 0 {
		return 0, 0, rangeIgnored
	}
	first, last := spec[:dash], spec[dash+1:]
	if len(first) == 0 { // suffix: the last n bytes
		n, ok := rangeDigits(last)
		if !ok {
			return 0, 0, rangeIgnored
		}
		if n == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		return size - min(n, size), size - 1, rangeOK
	}
	start, ok := rangeDigits(first)
	if !ok {
		return 0, 0, rangeIgnored
	}
	end = math.MaxInt64
	if len(last) > 0 {
		if end, ok = rangeDigits(last); !ok || end < start {
			return 0, 0, rangeIgnored
		}
	}
	if start >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return start, min(end, size-1), rangeOK
}

// rangeDigits parses 1*DIGIT, saturating at math.MaxInt64.
func rangeDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := int64(ch - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
		} else {
			n = n*10 + d
		}
	}
	return n, true
}
