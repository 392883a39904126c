package http

import (
	"time"

	"github.com/goes-project/goes/protocols"
)

// AccessEntry is one answered request, as Protocol.AccessLog sees it.
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
