// Package ipc is the control channel of goes: the messages between the CLI
// and the master (over a Unix socket in the run directory) and between the
// master and each worker (over a socketpair).
//
// A frame is a text header, the protocol version and the payload length in
// decimal, then the payload, a JSON object:
//
//	goes/1 17\n{"type":"status"}
//
// so a human can talk to a master with socat:
//
//	printf 'goes/1 17\n{"type":"status"}' | socat - UNIX-CONNECT:run/goes.sock
//
// A trailing newline after a payload is allowed and skipped.
package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Version is the frame version this package writes and reads.
const Version = 1

// MaxPayload caps one frame's payload (16 MiB).
const MaxPayload = 16 << 20

// maxHeader is the longest header: "goes/1 " + 8 digits + "\n".
const maxHeader = len("goes/1 ") + 8 + 1

var prefix = []byte("goes/")

// Errors.
var (
	// ErrBadFrame: the bytes are not a goes control frame.
	ErrBadFrame = errors.New("ipc: bad frame")
	// ErrVersion: the frame's version is not one this package speaks.
	ErrVersion = errors.New("ipc: unsupported version")
	// ErrTooLarge: the payload is over MaxPayload.
	ErrTooLarge = errors.New("ipc: frame too large")
)

// Message is one control message. Requests carry an ID that the answer
// repeats; Type "ok" or "error" answers a request.
type Message struct {
	// Type names the request, event or answer ("status", "ready", "ok", ...).
	Type string `json:"type"`
	// ID pairs an answer with its request; 0 for events.
	ID uint64 `json:"id,omitempty"`
	// Error explains a Type "error" answer.
	Error string `json:"error,omitempty"`
	// Body is the type-specific payload.
	Body json.RawMessage `json:"body,omitempty"`
}

// Decode parses one frame at the start of buf. It returns the message and
// the number of bytes used, n == 0 when buf holds only part of a frame, or
// an error when buf can never start a valid frame.
func Decode(buf []byte) (m Message, n int, err error) {
	// Skip the newlines a human may type between frames.
	for n < len(buf) && (buf[n] == '\n' || buf[n] == '\r') {
		n++
	}
	head := buf[n:]
	for i := 0; i < len(head) && i < len(prefix); i++ {
		if head[i] != prefix[i] {
			return Message{}, 0, fmt.Errorf("%w: header does not start with %q", ErrBadFrame, prefix)
		}
	}
	nl := bytes.IndexByte(head[:min(len(head), maxHeader)], '\n')
	if nl < 0 {
		if len(head) >= maxHeader {
			return Message{}, 0, fmt.Errorf("%w: header too long", ErrBadFrame)
		}
		return Message{}, 0, nil
	}
	ver, length, ok := bytes.Cut(bytes.TrimSuffix(head[len(prefix):nl], []byte("\r")), []byte(" "))
	if !ok {
		return Message{}, 0, fmt.Errorf("%w: header has no length", ErrBadFrame)
	}
	v, err := strconv.Atoi(string(ver))
	if err != nil {
		return Message{}, 0, fmt.Errorf("%w: version %q", ErrBadFrame, ver)
	}
	if v != Version {
		return Message{}, 0, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	size, err := strconv.Atoi(string(length))
	if err != nil || size < 0 || len(length) > 8 {
		return Message{}, 0, fmt.Errorf("%w: length %q", ErrBadFrame, length)
	}
	if size > MaxPayload {
		return Message{}, 0, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	end := n + nl + 1 + size
	if len(buf) < end {
		return Message{}, 0, nil
	}
	if err := json.Unmarshal(buf[n+nl+1:end], &m); err != nil {
		return Message{}, 0, fmt.Errorf("%w: payload: %v", ErrBadFrame, err)
	}
	if m.Type == "" {
		return Message{}, 0, fmt.Errorf("%w: message has no type", ErrBadFrame)
	}
	return m, end, nil
}

// Append appends the frame of m to dst.
func Append(dst []byte, m Message) ([]byte, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return dst, fmt.Errorf("ipc: encode %s: %w", m.Type, err)
	}
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	dst = append(dst, prefix...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(payload)), 10)
	dst = append(dst, '\n')
	return append(dst, payload...), nil
}

// Conn reads and writes frames on a stream. Send is safe for concurrent
// use; Recv must be called from one goroutine at a time.
type Conn struct {
	rw  io.ReadWriter
	buf []byte // received, not yet decoded
	tmp []byte // read buffer

	wmu sync.Mutex
	out []byte
}

// NewConn returns a Conn over rw.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{rw: rw, tmp: make([]byte, 4096)}
}

// Send writes m as one frame.
func (c *Conn) Send(m Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	c.out, err = Append(c.out[:0], m)
	if err != nil {
		return err
	}
	_, err = c.rw.Write(c.out)
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	return err
}

// Recv reads the next frame. It returns io.EOF when the peer closed the
// stream between frames and io.ErrUnexpectedEOF inside one.
func (c *Conn) Recv() (Message, error) {
	for {
		m, n, err := Decode(c.buf)
		if err != nil {
			return Message{}, err
		}
		if n > 0 {
			c.buf = c.buf[n:]
			return m, nil
		}
		k, err := c.rw.Read(c.tmp)
		c.buf = append(c.buf, c.tmp[:k]...)
		if err != nil {
			if k > 0 {
				continue // decode what arrived before the error
			}
			if err == io.EOF && len(bytes.Trim(c.buf, "\r\n")) > 0 {
				return Message{}, io.ErrUnexpectedEOF
			}
			return Message{}, err
		}
	}
}

// Decode decodes m's body into v.
func (m Message) Decode(v any) error {
	if len(m.Body) == 0 {
		return fmt.Errorf("ipc: %s: empty body", m.Type)
	}
	if err := json.Unmarshal(m.Body, v); err != nil {
		return fmt.Errorf("ipc: %s body: %w", m.Type, err)
	}
	return nil
}

// New returns a message of type typ with v as its body (nil for none).
func New(typ string, id uint64, v any) (Message, error) {
	m := Message{Type: typ, ID: id}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return Message{}, fmt.Errorf("ipc: encode %s body: %w", typ, err)
		}
		m.Body = b
	}
	return m, nil
}
