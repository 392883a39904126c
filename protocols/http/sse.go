package http

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadEvent is returned by EventStream.Send and Comment for an event that
// cannot be written: a line end in ID, Event or a comment, NUL in ID, or a
// negative Retry.
var ErrBadEvent = errors.New("http: invalid server-sent event")

// Event is one Server-Sent Event (the text/event-stream format of the
// HTML standard).
type Event struct {
	// ID, when not empty, becomes the client's last event ID (sent back in
	// Last-Event-ID when it reconnects). No CR, LF or NUL.
	ID string
	// Event is the event type; empty means "message". No CR or LF.
	Event string
	// Data is the payload. It may hold several lines (ended by LF, CRLF or
	// CR): each becomes a data line, and the client sees them joined by
	// LF.
	Data string
	// Retry, when > 0, is the client's reconnection delay, sent in
	// milliseconds.
	Retry time.Duration
}

// check validates ev before anything is written.
func (ev *Event) check() error {
	if i := strings.IndexAny(ev.ID, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: id %q", ErrBadEvent, strings.Clone(ev.ID))
	}
	if i := strings.IndexAny(ev.Event, "\r\n"); i >= 0 {
		return fmt.Errorf("%w: event %q", ErrBadEvent, strings.Clone(ev.Event))
	}
	if ev.Retry < 0 {
		return fmt.Errorf("%w: retry %v", ErrBadEvent, ev.Retry)
	}
	return nil
}

// appendEvent appends the wire form of ev (already checked). An event
// with only an ID or a Retry is written without data lines: it sets them
// without dispatching an event on the client. Otherwise at least one data
// line is written, so an empty Data dispatches an event with empty data.
func appendEvent(dst []byte, ev *Event) []byte {
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.Event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Event...)
		dst = append(dst, '\n')
	}
	if ev.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, ev.Retry.Milliseconds(), 10)
		dst = append(dst, '\n')
	}
	if ev.Data != "" || ev.Event != "" || (ev.ID == "" && ev.Retry <= 0) {
		dst = appendDataLines(dst, ev.Data)
	}
	return append(dst, '\n')
}

// appendDataLines appends data as data lines, one per line of data (ended
// by LF, CRLF or CR).
func appendDataLines(dst []byte, data string) []byte {
	for {
		i := strings.IndexAny(data, "\r\n")
		line := data
		if i >= 0 {
			line = data[:i]
		}
		if line == "" {
			dst = append(dst, "data:\n"...)
		} else {
			dst = append(dst, "data: "...)
			dst = append(dst, line...)
			dst = append(dst, '\n')
		}
		if i < 0 {
			return dst
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// EventStream is a streamed text/event-stream response, started by SSE.
// Its methods are safe for concurrent use.
type EventStream struct {
	w *StreamWriter
}

// SSE answers the oldest unanswered request on c with a Server-Sent Events
// stream: 200, Content-Type text/event-stream and Cache-Control no-cache
// (unless header has one), followed by header. It is Stream underneath:
// its documentation (pausing c's reading until End, HTTP/1.0, HEAD,
// draining, errors) applies as is. The caller must End it, also when the
// client goes away (then Send returns an error).
func SSE(c StreamConn, header ...Field) (*EventStream, error) {
	h := make([]Field, 0, len(header)+1)
	hasCache := false
	for _, f := range header {
		hasCache = hasCache || equalFoldString(f.Name, "cache-control")
	}
	if !hasCache {
		h = append(h, Field{Name: "Cache-Control", Value: "no-cache"})
	}
	h = append(h, header...)
	w, err := Stream(c, &Response{ContentType: "text/event-stream", Header: h})
	if err != nil {
		return nil, err
	}
	return &EventStream{w: w}, nil
}

// Send writes ev as one piece of the stream (one chunk). It returns an
// error wrapping ErrBadEvent for an invalid ev (nothing is written), and
// otherwise what StreamWriter.Write returns (connections.ErrSendBufferFull:
// ev was dropped whole, send it again after OnBufferDrain). It does not
// allocate in the steady state.
func (s *EventStream) Send(ev Event) error {
	if err := ev.check(); err != nil {
		return err
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return ErrStreamEnded
	}
	buf := w.reserveLocked(len(ev.ID) + len(ev.Event) + len(ev.Data) + 48)
	return w.sendLocked(appendEvent(buf, &ev))
}

// Comment writes a comment line (": text"), which clients ignore: a
// keep-alive for proxies that close silent connections. text must not
// hold CR or LF.
func (s *EventStream) Comment(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return fmt.Errorf("%w: comment %q", ErrBadEvent, strings.Clone(text))
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return ErrStreamEnded
	}
	buf := append(w.reserveLocked(len(text)+4), ": "...)
	buf = append(buf, text...)
	return w.sendLocked(append(buf, '\n'))
}

// End ends the stream (see StreamWriter.End); the client's EventSource
// then reconnects after its retry delay unless the page closes it.
func (s *EventStream) End() error { return s.w.End() }

// Writer returns the stream underneath, for raw pieces of the event
// stream.
func (s *EventStream) Writer() *StreamWriter { return s.w }
