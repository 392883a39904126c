package tlsrec

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

const (
	recordHeaderLen = 5
	// maxHello bounds the bytes a session buffers before its ClientHello
	// is complete: crypto/tls refuses a handshake message over 64 KiB.
	maxHello = 64<<10 + 4 + 8*recordHeaderLen
	// maxRecord is the largest record a peer may send (RFC 8446 5.2:
	// 2^14 bytes of plaintext plus 256 of expansion).
	maxRecord = 1<<14 + 256
)

// Hello is what Input says of a session's ClientHello.
type Hello uint8

const (
	// HelloMore: the ClientHello is not complete yet.
	HelloMore Hello = iota
	// HelloReady: the ClientHello is complete; start the handshake
	// (Pool.Start).
	HelloReady
	// HelloBad: the bytes are not a TLS ClientHello (plain HTTP,
	// garbage) or are too large: close the connection.
	HelloBad
)

// ErrWouldBlock is what the transport answers crypto/tls, once the
// session is established, when the input lent by Open is used up: a
// net.Error whose Temporary() is true, which crypto/tls returns without
// recording it as the connection's error. Read returns it when there is
// nothing more to decrypt now.
var ErrWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsrec: would block" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

var (
	errNotUp       = errors.New("tlsrec: session not established")
	errClosedWrite = errors.New("tlsrec: close_notify or an alert already sent")
)

// phases of a session.
const (
	phaseHello uint8 = iota
	phaseHandshake
	phaseUp
	phaseClosed
)

// Session is one server-side TLS connection. The methods the loop calls
// (Input, Open, Read, Seal, Pending, CloseNotify, Close) may run on any
// one goroutine at a time; during the handshake they are safe to call
// concurrently with it.
type Session struct {
	// tc serves the handshake, and the records after it unless rec does.
	tc *tls.Conn
	// rec is the record layer once crypto/tls has handed a TLS 1.3
	// session over (record.go): recMem, in the session's own memory (a
	// fan-out seals for each member, whose state is cold by then: one
	// object less to fetch, and a page walk less); tc is then nil.
	rec    *rec13
	t      transport
	recMem rec13
}

// Peer gives a session's connection addresses, asked for only when
// crypto/tls's callbacks want them (ClientHelloInfo.Conn): an epoll
// connection makes its peer's net.Addr on demand.
type Peer interface {
	Local() net.Addr
	Remote() net.Addr
}

// addrs is a Peer of two addresses known already.
type addrs struct{ laddr, raddr net.Addr }

func (a *addrs) Local() net.Addr  { return a.laddr }
func (a *addrs) Remote() net.Addr { return a.raddr }

// New makes a session that serves conf to a client at raddr. laddr and
// raddr are what crypto/tls's callbacks see as the connection's
// addresses.
func New(conf *Config, laddr, raddr net.Addr) *Session {
	s := &Session{}
	s.Init(conf, &addrs{laddr, raddr})
	return s
}

// Init makes s, a zero Session, serve conf to peer as New does: for a
// Session kept inside the caller's own struct, in the same allocation (a
// loop touches both for every record it seals; one object is fewer
// cache misses than two). s must not be copied afterwards.
func (s *Session) Init(conf *Config, peer Peer) {
	s.t.peer = peer
	s.t.conf = conf
}

// TakeState returns the connection's state as its handshake ended, once
// (nil before the handshake has succeeded, and after the first call): a
// session does not keep it.
func (s *Session) TakeState() *tls.ConnectionState {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hs == nil || t.phase == phaseHandshake {
		return nil
	}
	st := t.hs.state
	t.hs = nil
	return st
}

// Offloaded reports whether the session's records are served by this
// package's record layer (TLS 1.3 with AES-GCM) rather than by
// crypto/tls's tls.Conn, which then has been let go.
func (s *Session) Offloaded() bool {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return s.rec != nil
}

// Input takes bytes the loop read from the socket before the session is
// established (during the hello and the handshake) and keeps a copy. In
// the hello phase it says whether the ClientHello is complete.
func (s *Session) Input(b []byte) Hello {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == phaseClosed {
		return HelloBad
	}
	if t.phase == phaseHello && len(t.in)+len(b) > maxHello {
		return HelloBad
	}
	t.in = append(t.in, b...)
	switch t.phase {
	case phaseHello:
		h, end := helloState(t.in)
		if h == HelloReady {
			t.in = refragment(t.in, end)
		}
		return h
	case phaseHandshake:
		t.signal()
	}
	return HelloMore
}

// Established reports whether the handshake has completed and the session
// is not closed.
func (s *Session) Established() bool {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return s.t.phase == phaseUp
}

// Open lends the session b, bytes read from the socket once the session
// is established, until Read says ErrWouldBlock (then every byte of it
// is with crypto/tls) or Release. Input kept from the handshake comes
// first.
func (s *Session) Open(b []byte) {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(b) > 0 {
		s.t.drained, s.t.empty = false, false
	}
	if len(t.in) > 0 {
		t.in = append(t.in, b...)
		t.owned = true
		return
	}
	t.in, t.owned = b, false
}

// Release keeps a copy of what crypto/tls has not taken of the bytes lent
// by Open, for a loop that stops reading before ErrWouldBlock (a paused
// connection).
func (s *Session) Release() {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := s.rec; r != nil && len(r.plain) > 0 {
		r.plain = append([]byte(nil), r.plain...)
	}
	if !t.owned && len(t.in) > 0 {
		t.in = append([]byte(nil), t.in...)
		t.owned = true
	}
	if len(t.in) == 0 {
		t.in, t.owned = nil, false
	}
}

// Buffered reports whether Read may have plaintext without more input:
// bytes kept by Release or Input, or the rest of a record crypto/tls has
// decrypted (Read stopped before ErrWouldBlock).
func (s *Session) Buffered() bool {
	if r := s.rec; r != nil {
		t := &s.t
		t.mu.Lock()
		defer t.mu.Unlock()
		return len(r.plain) > 0 || wholeRecord(t.in)
	}
	if !s.t.drained {
		return true
	}
	t := &s.t
	t.mu.Lock()
	n := len(t.in)
	t.mu.Unlock()
	return n > 0
}

// Read decrypts into p. It returns ErrWouldBlock when crypto/tls needs
// more input than Open lent, io.EOF after the peer's close_notify, and
// another error when the input is not valid TLS (crypto/tls has then
// queued an alert: Pending). Output crypto/tls writes while reading (an
// answer to KeyUpdate, an alert) waits in Pending.
func (s *Session) Read(p []byte) (n int, err error) {
	if s.rec != nil {
		return s.readRec(p)
	}
	if s.t.empty {
		s.t.drained = true
		return 0, ErrWouldBlock
	}
	defer func() { s.t.drained = err == ErrWouldBlock }()
	n, err = s.tc.Read(p)
	if err == nil && n > 0 && n < len(p) {
		// crypto/tls stops short of p only once it holds no more
		// plaintext; and no ciphertext, when the transport handed it
		// whole records (chunk) and has no input left.
		t := &s.t
		t.mu.Lock()
		s.t.empty = len(t.in) == 0 && t.left == 0 && t.hdrN == 0
		t.mu.Unlock()
	}
	if err != nil && n == 0 {
		if err == ErrWouldBlock {
			return 0, ErrWouldBlock
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Temporary() && !ne.Timeout() {
			return 0, ErrWouldBlock
		}
	}
	if err == ErrWouldBlock && n > 0 {
		err = nil
	}
	if err == nil && n == 0 && len(p) > 0 {
		err = ErrWouldBlock
	}
	return n, err
}

// Seal appends to dst the records of p, encrypted, after what Pending
// would return; it returns the extended buffer.
func (s *Session) Seal(dst, p []byte) ([]byte, error) {
	t := &s.t
	t.mu.Lock()
	if t.phase != phaseUp {
		t.mu.Unlock()
		return dst, errNotUp
	}
	dst = append(dst, t.pend...)
	t.pend = nil
	if r := s.rec; r != nil {
		closed := r.closed
		t.mu.Unlock()
		if closed {
			return dst, errClosedWrite
		}
		return r.sealData(dst, p)
	}
	// crypto/tls's records of p are appended to dst, lent as pend: no
	// other output can come between (the loop's goroutine only seals
	// and takes output).
	t.pend = dst
	t.mu.Unlock()
	_, err := s.tc.Write(p)
	t.mu.Lock()
	dst = t.pend
	t.pend = nil
	t.mu.Unlock()
	return dst, err
}

// MidRecord reports whether the input handed to crypto/tls ends inside
// a record: the client has sent part of one (crypto/tls holds it).
func (s *Session) MidRecord() bool {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.rec != nil {
		return len(t.in) > 0 && !wholeRecord(t.in)
	}
	return t.left > 0 || t.hdrN > 0
}

// Pending appends to dst what crypto/tls wrote by itself (a handshake
// flight, an alert, a KeyUpdate answer, close_notify) and forgets it.
func (s *Session) Pending(dst []byte) []byte {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	dst = append(dst, t.pend...)
	t.pend = nil
	return dst
}

// HasPending reports whether Pending has bytes.
func (s *Session) HasPending() bool {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pend) > 0
}

// Unwritten gives back to Pending the tail of what Pending or Seal
// returned that the socket did not take, so that it goes first next time.
func (s *Session) Unwritten(b []byte) {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pend = append(append([]byte(nil), b...), t.pend...)
}

// CloseNotify queues the close_notify alert (Pending) of an established
// session; it does nothing otherwise.
func (s *Session) CloseNotify() {
	if !s.Established() {
		return
	}
	if r := s.rec; r != nil {
		t := &s.t
		t.mu.Lock()
		if !r.closed {
			r.closed = true
			t.pend = r.alert(t.pend, nil)
		}
		t.mu.Unlock()
		return
	}
	s.tc.CloseWrite()
}

// Close ends the session: a handshake waiting for input fails at once,
// and the session's buffers are dropped. It does not write close_notify
// (CloseNotify).
func (s *Session) Close() {
	t := &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.phase = phaseClosed
	t.in, t.pend, t.owned = nil, nil, false
	t.signal()
	if s.rec != nil {
		s.rec.drop()
	}
}

// transport is the session's net.Conn as crypto/tls sees it.
type transport struct {
	mu    sync.Mutex
	phase uint8
	owned bool // in is the session's own copy (else lent by Open)
	// drained: the last Read said ErrWouldBlock and no input came since
	// (crypto/tls holds no plaintext that Read has not returned).
	drained bool
	// empty: crypto/tls holds neither plaintext nor ciphertext and the
	// transport no input, and no input came since: Read answers
	// ErrWouldBlock without asking crypto/tls (a keep-alive request's
	// second Read, which cost a lock round and two allocations).
	empty bool
	in    []byte // input not yet handed to crypto/tls
	pend  []byte // output crypto/tls (or rec) wrote outside Seal
	// Framing of the input handed to crypto/tls: left bytes of the
	// current record's body remain, or (left 0) hdrN bytes of the next
	// header were handed, kept in hdr.
	left int
	hdrN int
	hdr  [recordHeaderLen]byte

	conf *Config      // until the handshake starts
	hs   *handshaking // from the handshake's start until TakeState

	peer Peer
}

func (t *transport) signal() {
	if t.hs != nil && t.hs.sig != nil {
		select {
		case t.hs.sig <- struct{}{}:
		default:
		}
	}
}

// chunk is how many bytes of t.in to hand crypto/tls now: up to the end
// of the record they belong to, so that crypto/tls buffers one record at
// a time.
func (t *transport) chunk() int {
	if t.left > 0 {
		return min(t.left, len(t.in))
	}
	need := recordHeaderLen - t.hdrN
	if len(t.in) < need {
		return len(t.in)
	}
	var h [recordHeaderLen]byte
	copy(h[:], t.hdr[:t.hdrN])
	copy(h[t.hdrN:], t.in[:need])
	n := int(h[3])<<8 | int(h[4])
	return min(len(t.in), need+n)
}

// advance accounts the framing of b, handed to crypto/tls.
func (t *transport) advance(b []byte) {
	for len(b) > 0 {
		if t.left > 0 {
			k := min(t.left, len(b))
			t.left -= k
			b = b[k:]
			continue
		}
		k := copy(t.hdr[t.hdrN:], b)
		t.hdrN += k
		b = b[k:]
		if t.hdrN == recordHeaderLen {
			t.hdrN = 0
			t.left = int(t.hdr[3])<<8 | int(t.hdr[4])
		}
	}
}

func (t *transport) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		if t.phase == phaseClosed {
			return 0, net.ErrClosed
		}
		if k := min(t.chunk(), len(p)); k > 0 {
			n := copy(p, t.in[:k])
			t.advance(p[:n])
			t.in = t.in[n:]
			if len(t.in) == 0 {
				t.in, t.owned = nil, false
			}
			return n, nil
		}
		if t.phase != phaseHandshake {
			return 0, ErrWouldBlock
		}
		// Handshake: have the loop write what crypto/tls flushed, give
		// the CPU slot back and wait for the client.
		wake, pool, sig := t.hs.wake, t.hs.pool, t.hs.sig
		flush := len(t.pend) > 0 && wake != nil
		t.mu.Unlock()
		if flush {
			wake()
		}
		pool.release()
		<-sig
		pool.acquire()
		t.mu.Lock()
	}
}

func (t *transport) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.phase == phaseClosed {
		return 0, net.ErrClosed
	}
	t.pend = append(t.pend, b...)
	if t.phase == phaseHandshake && t.hs.serverSecret != nil {
		t.hs.out = append(t.hs.out, b...)
	}
	return len(b), nil
}

// Close is crypto/tls's (its handshake context ended, or it gave up):
// the session is over.
func (t *transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.phase = phaseClosed
	t.in, t.owned = nil, false
	t.signal()
	return nil
}

func (t *transport) LocalAddr() net.Addr {
	if t.peer == nil {
		return nil
	}
	return t.peer.Local()
}

func (t *transport) RemoteAddr() net.Addr {
	if t.peer == nil {
		return nil
	}
	return t.peer.Remote()
}
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*transport)(nil)
