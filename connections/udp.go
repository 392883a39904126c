package connections

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/protocols"
)

// ServePacket reads datagrams from pc until Drain, Shutdown or Close. Every
// datagram is one Connection whose Send answers its sender; its packets are
// framed by the protocol like a stream's, but a datagram never continues in
// the next one. Closing such a connection never closes pc. OnConnect and
// OnClose do not run for datagrams.
func (s *Server) ServePacket(pc net.PacketConn) error {
	if !s.track(pc, false) {
		return ErrServerClosed
	}
	defer s.untrack(pc)
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			if isTemporary(err) {
				continue
			}
			return err
		}
		s.accepted.Add(1)
		s.ctr.bytesIn.Add(uint64(n))
		d := &datagram{s: s, pc: pc, addr: addr, id: s.nextID(), created: time.Now()}
		d.bytesIn.Store(uint64(n))
		d.serve(buf[:n])
	}
}

// datagram is the Connection of one UDP datagram.
type datagram struct {
	s       *Server
	pc      net.PacketConn
	addr    net.Addr
	id      uint64
	created time.Time

	stateMu sync.Mutex // guards state; never held while calling out
	state   any

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	closed   atomic.Bool
	mu       sync.Mutex
	userCtx  any
	out      []byte
}

var _ Connection = (*datagram)(nil)

func (d *datagram) serve(b []byte) {
	s := d.s
	var derr error
	if err := guard(func() { _, _, derr = deliver(s, &s.ctr, d, d, b, true) }); err != nil {
		s.errs.Add(1)
		var pe *panicError
		if errors.As(err, &pe) {
			s.panics.Add(1)
			s.log.Error().Uint64("conn", d.id).Interface("panic", pe.value).Bytes("stack", pe.stack).Msg("callback panicked, datagram dropped")
		}
		d.onError(err)
		return
	}
	if derr != nil {
		d.reject(derr)
	}
}

// halted reports whether the datagram's connection was closed.
func (d *datagram) halted() bool { return d.closed.Load() }

func (d *datagram) reject(err error) {
	d.s.errs.Add(1)
	d.s.badInput.Add(1)
	d.s.log.Info().Uint64("conn", d.id).Stringer("remote", d.addr).Err(err).Msg("bad datagram dropped")
	d.onError(err)
}

func (d *datagram) onError(err error) {
	if h := d.s.cfg.Handler.OnError; h != nil {
		guard(func() { h(d, err) })
	}
}

func (d *datagram) Send(data string, raw bool) error {
	return d.send(stringBytes(data), raw)
}

func (d *datagram) SendBytes(data []byte, raw bool) error { return d.send(data, raw) }

func (d *datagram) WriteRaw(b []byte) error { return d.send(b, true) }

func (d *datagram) send(b []byte, raw bool) error {
	if d.closed.Load() {
		return ErrClosed
	}
	d.mu.Lock()
	out := d.out[:0]
	var err error
	if raw || d.s.cfg.Protocol == nil {
		out = append(out, b...)
	} else {
		out, err = d.s.cfg.Protocol.Encode(d, out, b)
	}
	d.out = out
	if err != nil {
		d.mu.Unlock()
		d.onError(err)
		return err
	}
	n, err := d.pc.WriteTo(out, d.addr)
	d.mu.Unlock()
	d.bytesOut.Add(uint64(n))
	d.s.ctr.bytesOut.Add(uint64(n))
	if err != nil {
		d.s.errs.Add(1)
		d.onError(err)
	}
	return err
}

func (d *datagram) ID() uint64                   { return d.id }
func (d *datagram) MaxPackageSize() int          { return d.s.cfg.MaxPackageSize }
func (d *datagram) CloseAfterFlush()             { d.closed.Store(true) }
func (d *datagram) Draining() bool               { return d.s.draining.Load() }
func (d *datagram) Close() error                 { d.closed.Store(true); return nil }
func (d *datagram) Destroy()                     { d.closed.Store(true) }
func (d *datagram) LocalAddr() net.Addr          { return d.pc.LocalAddr() }
func (d *datagram) RemoteAddr() net.Addr         { return d.addr }
func (d *datagram) Transport() string            { return d.s.cfg.Transport }
func (d *datagram) Protocol() protocols.Protocol { return d.s.cfg.Protocol }
func (d *datagram) PauseRecv()                   {}
func (d *datagram) ResumeRecv()                  {}
func (d *datagram) BytesRead() uint64            { return d.bytesIn.Load() }
func (d *datagram) BytesWritten() uint64         { return d.bytesOut.Load() }
func (d *datagram) SendBufferLen() int           { return 0 }
func (d *datagram) CreatedAt() time.Time         { return d.created }

// State returns the protocol's state of this datagram. Safe for concurrent
// use (see base.State).
func (d *datagram) State() any {
	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	return d.state
}

// SetState stores the protocol's state of this datagram. Safe for
// concurrent use.
func (d *datagram) SetState(v any) {
	d.stateMu.Lock()
	d.state = v
	d.stateMu.Unlock()
}

func (d *datagram) Context() any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.userCtx
}

func (d *datagram) SetContext(v any) {
	d.mu.Lock()
	d.userCtx = v
	d.mu.Unlock()
}
