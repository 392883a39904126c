package http

import (
	"time"

	"github.com/goes-project/goes/protocols"
)

// AccessEntry is one answered request, as Protocol.AccessLog sees it.
// A request the protocol answers itself (an *Error's reply, a timeout's
// 408, a shed connection's 503) has what was read of it: Method and Path
// once its request line was read (empty before, and for a 503), BytesIn
// the bytes read of it, Start its first read.
type AccessEntry struct {
	Method string
	// Path is the request target as sent (path and query).
	Path string
	// Status is the answer's status code.
	Status int
	// BytesIn is the request's size on the wire (head and body, as
	// framed; the head alone for a body streamed to OnMessage in pieces,
	// Protocol.StreamBody); BytesOut the answer's (head and body; for a streamed
	// answer, what its start wrote: the head, the first piece, or a
	// file's whole length).
	BytesIn, BytesOut int64
	// Start is when the request was decoded; Duration runs from then to
	// the answer's being written to the connection.
	Start    time.Time
	Duration time.Duration
}

// AccessLogger takes the entries of answered requests. LogAccess runs on
// the goroutine that answers (often the event loop): it must not block,
// and must not keep e.
type AccessLogger interface {
	LogAccess(c protocols.Conn, e *AccessEntry)
}

// pushAccess queues the entry of the request r, framed in n bytes. mu
// held.
func (st *connState) pushAccess(r *Request, n int) {
	if len(st.acc) == queueLen {
		st.acc = st.acc[1:]
	}
	st.acc = append(st.acc, AccessEntry{
		Method: string(r.MethodBytes()), Path: string(r.TargetBytes()),
		BytesIn: int64(n), Start: time.Now(),
	})
}

// popAccess takes the entry of the oldest unanswered request (a zero one
// with Start now when there is none). mu held.
func (st *connState) popAccess() AccessEntry {
	if len(st.acc) == 0 {
		return AccessEntry{Start: time.Now()}
	}
	e := st.acc[0]
	st.acc[0] = AccessEntry{}
	st.acc = st.acc[1:]
	if len(st.acc) == 0 {
		st.acc = st.acc[:0:0]
	}
	return e
}

// unpopAccess gives back the entry popAccess took. mu held.
func (st *connState) unpopAccess(e AccessEntry) {
	if e.Method == "" {
		return
	}
	st.acc = append([]AccessEntry{e}, st.acc...)
}

// logAccess completes e with its answer's status and size and hands it
// to the AccessLog.
// It takes e by value: the entry escapes to the heap here, only when the
// AccessLog is on, not in the answering functions' frames.
func (p *Protocol) logAccess(c protocols.Conn, e AccessEntry, status int, out int64) {
	e.Status, e.BytesOut = status, out
	e.Duration = time.Since(e.Start)
	p.AccessLog.LogAccess(c, &e)
}

// refuse wraps e, the parser's refusal of the request at the start of buf
// (the input Input or Decode was given), for the runtime: the reply is
// written, then the connection is closed. With AccessLog, the refusal
// has its entry, as an answer given by OnMessage does.
func (p *Protocol) refuse(c protocols.Conn, st *connState, buf []byte, e *Error) error {
	re := &protocols.ReplyError{Err: e, Reply: e.Reply()}
	if p.AccessLog != nil {
		p.logRefused(c, st, buf, e.Status, len(re.Reply))
	}
	return re
}

// notePartial keeps, for the entry of a refusal that may come later (a
// timeout's, with no input at hand), when the request in progress began
// and its request line once read. The reading goroutine's, after a frame
// of buf that needs more; AccessLog on.
func (st *connState) notePartial() {
	if st.began.IsZero() {
		st.began = time.Now()
	}
	if r := &st.req; st.accPath == "" && r.target.len() > 0 {
		st.accMethod, st.accPath = string(r.MethodBytes()), string(r.TargetBytes())
	}
}

// logRefused hands AccessLog the entry of an answer the protocol gives
// itself without OnMessage (a parser's error, a timeout's 408, a shed
// connection's 503) of out bytes. st is c's state, nil when it is not to
// be read (not on c's reading side) or c has none; buf the input holding
// the refused request at its start, nil when not at hand (a timeout). The
// entry has what is known of the request: its request line once read,
// the bytes read of it, and its start: its first read (its head's decoding
// for a streamed body's).
func (p *Protocol) logRefused(c protocols.Conn, st *connState, buf []byte, status, out int) {
	var e AccessEntry
	switch {
	case st == nil:
	case st.streaming:
		// A streamed body: the request's entry was queued with its head,
		// the newest (its body is read before any request after it).
		st.mu.Lock()
		e = st.popNewestAccess()
		st.mu.Unlock()
	case buf != nil:
		r := &st.req
		e.Method, e.Path = string(r.MethodBytes()), string(r.TargetBytes())
		e.BytesIn, e.Start = int64(len(buf)), st.began
	case st.inProgress:
		e.Method, e.Path = st.accMethod, st.accPath
		e.BytesIn, e.Start = int64(st.seen), st.began
	}
	if e.Start.IsZero() {
		e.Start = time.Now()
	}
	p.logAccess(c, e, status, int64(out))
}

// popNewestAccess takes the entry of the newest unanswered request (a
// zero one when there is none). mu held.
func (st *connState) popNewestAccess() AccessEntry {
	n := len(st.acc)
	if n == 0 {
		return AccessEntry{}
	}
	e := st.acc[n-1]
	st.acc[n-1] = AccessEntry{}
	st.acc = st.acc[:n-1]
	return e
}
