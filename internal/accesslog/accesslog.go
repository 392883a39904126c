// Package accesslog writes the access log of an HTTP listener: one JSON
// line (zerolog) per answered request, off the event loop. LogAccess puts
// the entry in a bounded queue and returns; one goroutine drains the
// queue into a buffered file writer, flushed whenever the queue runs
// empty. An entry that finds the queue full is dropped and counted
// (Dropped), never waited for. Reopen reopens the file (after logrotate
// moved it away, on USR1).
package accesslog

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// QueueLen is the default bound of the queue of entries not yet written.
const QueueLen = 8192

// bufSize is the file writer's buffer.
const bufSize = 64 << 10

type entry struct {
	http.AccessEntry
	remote net.Addr
}

// Writer is an access log file. It is an http.AccessLogger.
type Writer struct {
	path    string
	worker  int
	q       chan entry
	reopen  chan chan error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
	f       *os.File // the drainer's
	bw      *bufio.Writer
	line    bytes.Buffer // the line being encoded
	err     error        // the drainer's last write error, reported once
}

// Open opens (appends to, creating it owner-only) the access log at path
// for the worker of that id, with a queue of queueLen entries (0:
// QueueLen), and starts its drainer.
func Open(path string, worker, queueLen int) (*Writer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	if queueLen <= 0 {
		queueLen = QueueLen
	}
	w := &Writer{
		path: path, worker: worker, q: make(chan entry, queueLen),
		reopen: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{}),
		f: f, bw: bufio.NewWriterSize(f, bufSize),
	}
	go w.drain()
	return w, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("goes: access log: %w", err)
	}
	return f, nil
}

// LogAccess queues e (http.AccessLogger); it never blocks: with the
// queue full, e is dropped and counted.
func (w *Writer) LogAccess(c protocols.Conn, e *http.AccessEntry) {
	en := entry{AccessEntry: *e}
	if ra, ok := c.(interface{ RemoteAddr() net.Addr }); ok {
		en.remote = ra.RemoteAddr()
	}
	select {
	case w.q <- en:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is the count of entries dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Reopen writes out what is queued so far to the file open now, then
// opens path afresh: lines logged after Reopen returns go to the new file.
func (w *Writer) Reopen() error {
	ch := make(chan error, 1)
	select {
	case w.reopen <- ch:
		return <-ch
	case <-w.done:
		return nil
	}
}

// Close writes out the queue and closes the file. Entries logged after
// Close are dropped.
func (w *Writer) Close() error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.err
}

func (w *Writer) drain() {
	defer close(w.done)
	lg := zerolog.New(&w.line)
	for {
		select {
		case e := <-w.q:
			w.write(&lg, &e)
			// Take what else is queued before flushing once.
			for more := true; more; {
				select {
				case e := <-w.q:
					w.write(&lg, &e)
				default:
					more = false
				}
			}
			w.flush()
		case ch := <-w.reopen:
			w.writeQueued(&lg)
			w.flush()
			f, err := openFile(w.path)
			if err == nil {
				w.f.Close()
				w.f = f
				w.bw.Reset(f)
			}
			ch <- err
		case <-w.stop:
			w.writeQueued(&lg)
			w.flush()
			if err := w.f.Close(); err != nil && w.err == nil {
				w.err = err
			}
			return
		}
	}
}

func (w *Writer) writeQueued(lg *zerolog.Logger) {
	for {
		select {
		case e := <-w.q:
			w.write(lg, &e)
		default:
			return
		}
	}
}

func (w *Writer) flush() {
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *Writer) write(lg *zerolog.Logger, e *entry) {
	ev := lg.Log().Str("time", e.Start.UTC().Format(time.RFC3339Nano))
	if e.remote != nil {
		ev = ev.Str("remote", e.remote.String())
	}
	ev.Str("method", e.Method).
		Str("path", e.Path).
		Int("status", e.Status).
		Int64("bytes_in", e.BytesIn).
		Int64("bytes_out", e.BytesOut).
		Float64("duration_ms", float64(e.Duration)/float64(time.Millisecond)).
		Int("worker", w.worker).
		Send()
	// Whole lines only in each write(2): the workers of a listener append
	// to one file.
	if w.line.Len() > w.bw.Available() {
		w.flush()
	}
	if _, err := w.bw.Write(w.line.Bytes()); err != nil && w.err == nil {
		w.err = err
	}
	w.line.Reset()
}
