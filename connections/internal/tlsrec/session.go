package tlsrec

import (
	"context"
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

var errNotUp = errors.New("tlsrec: session not established")

// phases of a session.
const (
	phaseHello uint8 = iota
	phaseHandshake
	phaseUp
	phaseClosed
)

// Config is a server configuration as sessions serve it, made once per
// listener (NewConfig) as tls.Server's would be.
type Config struct {
	base *tls.Config
	// srv is what each session's tls.Server is made with: base's copy
	// whose GetConfigForClient gives each handshake a copy of the
	// configuration of now (the ticket keys of now) with the session's
	// key log (keyLog). It is one object for all sessions: crypto/tls
	// keeps the automatic ticket keys of a configuration without its own
	// in the one given to tls.Server.
	srv *tls.Config
}

// NewConfig makes the configuration sessions serve conf with (not
// copied: SetSessionTicketKeys on it, and its fields, apply to the
// handshakes that follow; its GetConfigForClient is called for each).
func NewConfig(conf *tls.Config) *Config {
	c := &Config{base: conf, srv: conf.Clone()}
	c.srv.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		use := conf
		if conf.GetConfigForClient != nil {
			uc, err := conf.GetConfigForClient(hi)
			if err != nil {
				return nil, err
			}
			if uc != nil {
				use = uc
			}
		}
		t, ok := hi.Conn.(*transport)
		if !ok || t.hs == nil || !offloadable(hi) {
			// No copy: a TLS 1.2 connection's tls.Conn keeps its
			// configuration for its life.
			return use, nil
		}
		cc := use.Clone()
		cc.KeyLogWriter = &keyLog{hs: t.hs, next: use.KeyLogWriter}
		return cc, nil
	}
	return c
}

// Session is one server-side TLS connection. The methods the loop calls
// (Input, Open, Read, Seal, Pending, CloseNotify, Close) may run on any
// one goroutine at a time; during the handshake they are safe to call
// concurrently with it.
type Session struct {
	// tc serves the handshake, and the records after it unless rec does.
	tc *tls.Conn
	// rec is the record layer once crypto/tls has handed a TLS 1.3
	// session over (record.go); tc is then nil.
	rec *rec13
	t   transport
	// drained: the last Read said ErrWouldBlock and no input came since
	// (crypto/tls holds no plaintext that Read has not returned).
	drained bool
	// empty: crypto/tls holds neither plaintext nor ciphertext and the
	// transport no input, and no input came since: Read answers
	// ErrWouldBlock without asking crypto/tls (a keep-alive request's
	// second Read, which cost a lock round and two allocations).
	empty bool
}

// New makes a session that serves conf (not copied; crypto/tls reads it
// as a tls.Server would) to a client at raddr. laddr and raddr are what
// crypto/tls's callbacks see as the connection's addresses.
func New(conf *Config, laddr, raddr net.Addr) *Session {
	s := &Session{}
	s.Init(conf, laddr, raddr)
	return s
}

// Init makes s, a zero Session, serve conf as New does: for a Session
// kept inside the caller's own struct, in the same allocation (a loop
// touches both for every record it seals; one object is fewer cache
// misses than two). s must not be copied afterwards.
func (s *Session) Init(conf *Config, laddr, raddr net.Addr) {
	s.t.laddr, s.t.raddr = laddr, raddr
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

// helloState looks at the start of a connection's input: records of
// type handshake whose fragments begin with a complete ClientHello. When
// it is, end is the end of the record that completes it.
func helloState(in []byte) (h Hello, end int) {
	start := len(in)
	var msg []byte // the handshake fragments' bytes, up to the message header
	need := -1     // the message's length with its header, once known
	got := 0
	for len(in) > 0 {
		if in[0] != 22 { // handshake
			return HelloBad, 0
		}
		if len(in) < recordHeaderLen {
			return HelloMore, 0
		}
		if in[1] != 3 {
			return HelloBad, 0
		}
		n := int(in[3])<<8 | int(in[4])
		if n == 0 || n > 1<<14 {
			return HelloBad, 0
		}
		frag := in[recordHeaderLen:]
		if len(frag) > n {
			frag = frag[:n]
		}
		if need < 0 {
			msg = append(msg, frag[:min(len(frag), 4-len(msg))]...)
			if len(msg) >= 1 && msg[0] != 1 { // client_hello
				return HelloBad, 0
			}
			if len(msg) == 4 {
				need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
				if need > maxHello {
					return HelloBad, 0
				}
			}
		}
		if len(frag) < n {
			return HelloMore, 0
		}
		got += len(frag)
		in = in[recordHeaderLen+n:]
		if need >= 0 && got >= need {
			return HelloReady, start - len(in)
		}
	}
	return HelloMore, 0
}

// helloFragment is the largest record body of a ClientHello as crypto/tls
// is handed it: crypto/tls's input buffer starts at 576 bytes (a record
// header and bytes.MinRead, in a size class) and keeps the size of the
// largest record it held, so a hello of a few KiB (a post-quantum key
// share is 1,216 bytes) in one record would leave the buffer of every
// connection that large.
const helloFragment = 512

// refragment rewrites the records of in[:end], the ClientHello's (not
// encrypted: the record layer may split a handshake message across
// records, RFC 8446 5.1), as records of at most helloFragment bytes.
func refragment(in []byte, end int) []byte {
	if end <= recordHeaderLen+helloFragment {
		return in
	}
	hdr := in[:3]
	var body []byte
	for p := in[:end]; len(p) > 0; {
		n := int(p[3])<<8 | int(p[4])
		body = append(body, p[recordHeaderLen:recordHeaderLen+n]...)
		p = p[recordHeaderLen+n:]
	}
	out := make([]byte, 0, len(in)+(len(body)/helloFragment+1)*recordHeaderLen)
	for len(body) > 0 {
		k := min(helloFragment, len(body))
		out = append(out, hdr[0], hdr[1], hdr[2], byte(k>>8), byte(k))
		out = append(out, body[:k]...)
		body = body[k:]
	}
	return append(out, in[end:]...)
}

// handshaking is a session's state while its handshake runs, and its
// result until the loop takes it (TakeState).
type handshaking struct {
	pool *Pool
	wake func()        // asks the loop to write Pending
	sig  chan struct{} // Input or Close happened
	// The application traffic secrets (keyLog), and what crypto/tls
	// wrote once it had the server's: the records it sealed under it
	// (session tickets) count in the sequence the record layer goes on
	// with.
	clientSecret, serverSecret []byte
	out                        []byte
	state                      *tls.ConnectionState
}

// handshake runs the handshake with a blocking transport; Pool calls it.
func (s *Session) handshake(ctx context.Context, p *Pool, wake func()) error {
	t := &s.t
	hs := &handshaking{pool: p, wake: wake, sig: make(chan struct{}, 1)}
	t.mu.Lock()
	if t.phase != phaseHello {
		t.mu.Unlock()
		return net.ErrClosed
	}
	t.phase, t.hs = phaseHandshake, hs
	conf := t.conf
	t.conf = nil
	t.mu.Unlock()
	s.tc = tls.Server(t, conf.srv)
	err := s.tc.HandshakeContext(ctx)
	var r *rec13
	if err == nil {
		cs := s.tc.ConnectionState()
		hs.state = &cs
		r = s.takeover(hs, &cs)
	}
	clear(hs.clientSecret)
	clear(hs.serverSecret)
	t.mu.Lock()
	defer t.mu.Unlock()
	hs.pool, hs.wake, hs.sig = nil, nil, nil
	hs.clientSecret, hs.serverSecret, hs.out = nil, nil, nil
	if t.phase == phaseClosed {
		if r != nil {
			r.drop()
		}
		if err == nil {
			err = net.ErrClosed
		}
		return err
	}
	if err != nil {
		t.phase = phaseClosed
		t.in = nil
		return err
	}
	t.phase = phaseUp
	if r != nil {
		// crypto/tls has handed over: its tls.Conn, its buffers and its
		// handshake leftovers go.
		s.rec, s.tc = r, nil
	}
	if len(t.in) == 0 {
		t.in = nil
	}
	return nil
}

// takeover makes the record layer that goes on from crypto/tls's
// handshake, or returns nil when crypto/tls keeps the session (TLS 1.2,
// a cipher suite crypto/cipher does not serve, a configuration whose
// key log did not reach the session).
func (s *Session) takeover(hs *handshaking, cs *tls.ConnectionState) *rec13 {
	if cs.Version != tls.VersionTLS13 || hs.clientSecret == nil || hs.serverSecret == nil {
		return nil
	}
	t := &s.t
	t.mu.Lock()
	mid := t.left > 0 || t.hdrN > 0 // crypto/tls holds part of a record
	t.mu.Unlock()
	if mid {
		return nil
	}
	r, err := newRec13(cs.CipherSuite, hs.clientSecret, hs.serverSecret)
	if err != nil {
		return nil
	}
	// The records crypto/tls sealed under the server's application key
	// (its session tickets) are the last it wrote: the first that opens
	// under the key is number 0, the next 1... (a record under the
	// handshake keys does not open under it). open counts them.
	for out := hs.out; wholeRecord(out); {
		n := recordHeaderLen + (int(out[3])<<8 | int(out[4]))
		rec := out[:n]
		out = out[n:]
		if rec[0] != recordTypeApplication {
			continue
		}
		opened := r.out.seq
		if _, err := r.out.open(rec[recordHeaderLen:recordHeaderLen], rec); err != nil && opened > 0 {
			r.drop() // not the sequence expected: crypto/tls keeps the session
			return nil
		}
	}
	return r
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
		s.drained, s.empty = false, false
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
	if !s.drained {
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
	if s.empty {
		s.drained = true
		return 0, ErrWouldBlock
	}
	defer func() { s.drained = err == ErrWouldBlock }()
	n, err = s.tc.Read(p)
	if err == nil && n > 0 && n < len(p) {
		// crypto/tls stops short of p only once it holds no more
		// plaintext; and no ciphertext, when the transport handed it
		// whole records (chunk) and has no input left.
		t := &s.t
		t.mu.Lock()
		s.empty = len(t.in) == 0 && t.left == 0 && t.hdrN == 0
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
		t.mu.Unlock()
		return r.sealData(dst, p)
	}
	t.dst, t.sealing = dst, true
	t.mu.Unlock()
	_, err := s.tc.Write(p)
	t.mu.Lock()
	dst = t.dst
	t.dst, t.sealing = nil, false
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
	// sealing: Seal runs; writes go to dst.
	sealing bool
	in      []byte // input not yet handed to crypto/tls
	pend    []byte // output crypto/tls wrote outside Seal
	dst     []byte
	// Framing of the input handed to crypto/tls: left bytes of the
	// current record's body remain, or (left 0) hdrN bytes of the next
	// header were handed, kept in hdr.
	left int
	hdrN int
	hdr  [recordHeaderLen]byte

	conf *Config      // until the handshake starts
	hs   *handshaking // from the handshake's start until TakeState

	laddr, raddr net.Addr
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
	if t.sealing {
		t.dst = append(t.dst, b...)
	} else {
		t.pend = append(t.pend, b...)
	}
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

func (t *transport) LocalAddr() net.Addr              { return t.laddr }
func (t *transport) RemoteAddr() net.Addr             { return t.raddr }
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*transport)(nil)
