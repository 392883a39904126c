package http

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Errors of streamed responses.
var (
	// ErrStreamEnded is returned by a StreamWriter's methods after End.
	ErrStreamEnded = errors.New("http: streamed response already ended")
	// ErrStreamOpen is returned by Stream, Respond and Send (Encode) on a
	// connection whose streamed response has not ended: its next answer
	// can only follow the stream's End.
	ErrStreamOpen = errors.New("http: a streamed response is in progress on this connection")
)

// StreamConn is what Stream needs of a connection; connections.Connection
// satisfies it.
type StreamConn interface {
	Conn
	PauseRecv()
	ResumeRecv()
}

// chunkRoom is the room kept before a chunk's data for its size line: up
// to 16 hex digits and CRLF.
const chunkRoom = 18

// maxStreamBuf is the largest chunk buffer a StreamWriter keeps between
// writes; larger chunks are built in a buffer of their own.
const maxStreamBuf = 256 << 10

// StreamWriter is a response whose body is sent piece by piece, started by
// Stream. Its methods are safe for concurrent use, and the usual producer
// is a goroutine of its own; the pieces go out in the order the calls
// return.
type StreamWriter struct {
	c     StreamConn
	st    *connState // nil once ended
	mu    sync.Mutex
	frame uint8 // frameChunked, frameClose, or frameLength for no body
	keep  bool  // the connection stays open after End
	ended bool
	buf   []byte      // chunk buffer, chunkRoom bytes reserved in front
	acc   AccessEntry // the answered request's, with AccessLog
}

// Stream answers the oldest unanswered request on c (see the package
// documentation for the order of answers) with the head of resp and
// returns the writer of its body, which the caller must End. resp.Body,
// when not empty, is the body's first piece.
//
// An HTTP/1.1 request gets "Transfer-Encoding: chunked": every Write is
// one chunk, End sends the last chunk and optional trailers. An HTTP/1.0
// request gets the body as is, ended by closing the connection at End. A
// HEAD request, 204 and 304 get the head only: Writes are dropped.
//
// Until End, c reads no further request (Stream calls c.PauseRecv; End
// calls c.ResumeRecv when the connection stays open), so pipelined
// requests are answered after the stream, in order; the idle timeout
// does not close it for reading nothing, only (with the connections
// runtime) when its peer takes none of its output for that long.
// Meanwhile Respond, Send and a second
// Stream on c fail with ErrStreamOpen. A stream begun before the worker
// drains goes on until End, or until the drain's timeout closes c; End
// then closes c instead of keeping it.
//
// Stream returns an error wrapping ErrBadResponse for a resp that cannot
// be written, ErrNoRequest when c has received no HTTP request,
// ErrStreamOpen, or the error of c.WriteRaw when the head could not be
// queued; after an error no response was started and the request is
// still owed an answer. Stream may be called from any goroutine that got
// c from an event callback after c's first request, most simply inside
// OnMessage. It does not keep resp.
func Stream(c StreamConn, resp *Response) (*StreamWriter, error) {
	if err := resp.check(); err != nil {
		return nil, err
	}
	st, ok := c.State().(*connState)
	if !ok {
		return nil, ErrNoRequest
	}
	var date [29]byte
	w, m, err := beginStream(c, st, &date)
	if err != nil {
		return nil, err
	}

	status := resp.Status
	if status == 0 {
		status = 200
	}
	http10 := m&m10 != 0
	w.keep = m&mKeep != 0 && !resp.Close && !c.Draining() && !http10
	w.frame = frameChunked
	if http10 {
		w.frame = frameClose
	}
	noBody := m&mHead != 0 || status == 204 || status == 304
	head := st.p.appendResponse(make([]byte, 0, 256+len(resp.Body)+chunkRoom), &answer{
		status: status, ctype: resp.ContentType, header: resp.Header,
		head: true, keep: w.keep, date: date[:], frame: w.frame,
	})
	if noBody {
		w.frame = frameLength
	} else if len(resp.Body) > 0 {
		head = appendChunk(head, w.frame, resp.Body)
	}
	if err := c.WriteRaw(head); err != nil {
		w.unbegin(m)
		return nil, err
	}
	if st.p.AccessLog != nil {
		st.p.logAccess(c, w.acc, status, int64(len(head)))
	}
	return w, nil
}

// beginStream starts a response that holds c until its End: it takes the
// answer metadata of the oldest unanswered request, puts the date in date
// and pauses reading; the head is the caller's to queue (or unbegin).
func beginStream(c StreamConn, st *connState, date *[29]byte) (*StreamWriter, uint8, error) {
	w := &StreamWriter{c: c, st: st}
	st.mu.Lock()
	if st.stream != nil {
		st.mu.Unlock()
		return nil, 0, ErrStreamOpen
	}
	m := st.pop()
	if st.p.AccessLog != nil {
		w.acc = st.popAccess()
	}
	copy(date[:], st.dateNow())
	st.stream = w
	st.mu.Unlock()
	// Reading pauses before anything is sent, so that the next request's
	// OnMessage cannot run before the stream ends.
	c.PauseRecv()
	return w, m, nil
}

// unbegin undoes beginStream when the head could not be queued: the
// request (metadata m) is owed an answer again.
func (w *StreamWriter) unbegin(m uint8) {
	st := w.st
	st.mu.Lock()
	st.stream = nil
	st.unpop(m)
	if st.p.AccessLog != nil {
		st.unpopAccess(w.acc)
	}
	st.mu.Unlock()
	w.c.ResumeRecv()
}

// appendChunk appends p framed as frame says.
func appendChunk(dst []byte, frame uint8, p []byte) []byte {
	if frame == frameChunked {
		dst = strconv.AppendUint(dst, uint64(len(p)), 16)
		dst = append(dst, "\r\n"...)
		dst = append(dst, p...)
		return append(dst, "\r\n"...)
	}
	return append(dst, p...)
}

// Write sends p as one piece of the body: one chunk over HTTP/1.1, as is
// over HTTP/1.0, nothing for HEAD, 204 or 304. An empty p sends nothing.
// Every Write is queued on the connection's send buffer at once (there is
// no Flush); p may be reused once Write returns.
//
// Write returns ErrStreamEnded after End, or the error of the connection's
// send as is: connections.ErrClosed once the connection is closed or
// closing (the peer left, the drain's timeout passed), and
// connections.ErrSendBufferFull when the send buffer is at
// MaxSendBufferSize. Then p was dropped whole and the stream is intact: a
// producer that must not lose data waits for OnBufferDrain and writes p
// again (OnBufferFull tells it when to stop early). OnBufferFull and
// OnError run inside the Write that filled the buffer, so they must not
// call this StreamWriter's methods. Safe for concurrent use; it does not
// allocate in the steady state for pieces up to 256 KiB.
func (w *StreamWriter) Write(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return ErrStreamEnded
	}
	if len(p) == 0 || w.frame == frameLength {
		return nil
	}
	if w.frame == frameClose || w.frame == frameSized {
		return w.c.WriteRaw(p)
	}
	return w.sendLocked(append(w.reserveLocked(len(p)), p...))
}

// reserveLocked returns the chunk buffer with its room for the size line
// and capacity for n more bytes. mu held.
func (w *StreamWriter) reserveLocked(n int) []byte {
	if need := chunkRoom + n + 2; cap(w.buf) < need {
		w.buf = make([]byte, chunkRoom, need+need/4)
	}
	return w.buf[:chunkRoom]
}

// sendLocked frames the data that follows the reserved room of buf (got
// from reserveLocked) as one piece and queues it. mu held.
func (w *StreamWriter) sendLocked(buf []byte) error {
	if len(buf) == chunkRoom || w.frame == frameLength {
		return nil
	}
	if cap(buf) <= maxStreamBuf {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	if w.frame == frameClose || w.frame == frameSized {
		return w.c.WriteRaw(buf[chunkRoom:])
	}
	var size [chunkRoom]byte
	line := strconv.AppendUint(size[:0], uint64(len(buf)-chunkRoom), 16)
	line = append(line, "\r\n"...)
	start := chunkRoom - len(line)
	copy(buf[start:], line)
	buf = append(buf, "\r\n"...)
	return w.c.WriteRaw(buf[start:])
}

// End ends the body: over HTTP/1.1 it sends the last chunk, followed by
// trailers when given (announce them in a Trailer field of the head, as
// some clients expect; they are not sent over HTTP/1.0). Then the
// connection reads again, or, when the request, the Response's Close,
// HTTP/1.0 or the draining worker ends it, closes once everything queued
// is written.
//
// End returns ErrStreamEnded when already ended and an error wrapping
// ErrBadResponse for an invalid or reserved trailer field (the stream is
// still open). An error of the connection's send (see Write) leaves the
// stream open: after connections.ErrSendBufferFull, End again once the
// buffer drains; after connections.ErrClosed there is nothing more to do.
// Safe for concurrent use.
func (w *StreamWriter) End(trailers ...Field) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return ErrStreamEnded
	}
	if w.frame == frameChunked {
		for _, f := range trailers {
			if err := checkField(f); err != nil {
				return err
			}
		}
		buf := append(w.buf[:0], "0\r\n"...)
		for _, f := range trailers {
			buf = append(buf, f.Name...)
			buf = append(buf, ": "...)
			buf = append(buf, f.Value...)
			buf = append(buf, "\r\n"...)
		}
		buf = append(buf, "\r\n"...)
		w.buf = buf[:0]
		if err := w.c.WriteRaw(buf); err != nil {
			return err
		}
	}
	w.ended = true
	st := w.st
	w.st = nil
	st.mu.Lock()
	st.stream = nil
	st.mu.Unlock()
	if !w.keep || w.c.Draining() {
		w.c.Close()
	} else {
		w.c.ResumeRecv()
	}
	return nil
}

// Ended reports whether End has succeeded. Safe for concurrent use.
func (w *StreamWriter) Ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}

// checkField validates a header or trailer field given by the user.
func checkField(f Field) error {
	if f.Name == "" || !validName(f.Name) || !validValue(f.Value) {
		// Clones keep the caller's strings from escaping through the error.
		return fmt.Errorf("%w: field %q: %q", ErrBadResponse, strings.Clone(f.Name), strings.Clone(f.Value))
	}
	if equalFoldString(f.Name, "content-length") || equalFoldString(f.Name, "transfer-encoding") ||
		equalFoldString(f.Name, "connection") {
		return fmt.Errorf("%w: field %s is the protocol's", ErrBadResponse, strings.Clone(f.Name))
	}
	return nil
}
