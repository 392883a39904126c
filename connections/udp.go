package connections

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/protocols"
)

// ServePacket reads datagrams from pc until Drain, Shutdown or Close. Every
// datagram is one Connection whose Send answers its sender; its packets are
// framed by the protocol like a stream's, but a datagram never continues in
// the next one. Closing such a connection never closes pc. OnConnect and
// OnClose do not run for datagrams.
func (srv *Server) ServePacket(pc net.PacketConn) error {
	s := srv.rt
	if !s.Track(pc, false) {
		return ErrServerClosed
	}
	defer s.Untrack(pc)
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if s.Draining.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			if core.IsTemporary(err) {
				continue
			}
			return err
		}
		s.Accepted.Add(1)
		s.Ctr.BytesIn.Add(uint64(n))
		d := &datagram{s: s, pc: pc, addr: addr, id: s.NextID(), created: time.Now()}
		d.bytesIn.Store(uint64(n))
		d.serve(buf[:n])
	}
}

// datagram is the Connection of one UDP datagram.
type datagram struct {
	s       *core.Runtime
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
	if err := core.Guard(func() { _, _, derr = core.Deliver(s, &s.Ctr, d, d, b, true) }); err != nil {
		s.Errs.Add(1)
		var pe *core.PanicError
		if errors.As(err, &pe) {
			s.Panics.Add(1)
			s.Log.Error().Uint64("conn", d.id).Interface("panic", pe.Value).Bytes("stack", pe.Stack).Msg("callback panicked, datagram dropped")
		}
		d.onError(err)
		return
	}
	if derr != nil {
		d.reject(derr)
	}
}

// Halted reports whether the datagram's connection was closed.
func (d *datagram) Halted() bool { return d.closed.Load() }

func (d *datagram) reject(err error) {
	d.s.Errs.Add(1)
	d.s.BadInput.Add(1)
	d.s.Log.Info().Uint64("conn", d.id).Stringer("remote", d.addr).Err(err).Msg("bad datagram dropped")
	d.onError(err)
}

func (d *datagram) onError(err error) {
	if h := d.s.Cfg.Handler.OnError; h != nil {
		core.Guard(func() { h(d, err) })
	}
}

func (d *datagram) Send(data string, raw bool) error {
	return d.send(core.StringBytes(data), raw)
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
	if raw || d.s.Cfg.Protocol == nil {
		out = append(out, b...)
	} else {
		out, err = d.s.Cfg.Protocol.Encode(d, out, b)
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
	d.s.Ctr.BytesOut.Add(uint64(n))
	if err != nil {
		d.s.Errs.Add(1)
		d.onError(err)
	}
	return err
}

func (d *datagram) ID() uint64                   { return d.id }
func (d *datagram) MaxPackageSize() int          { return d.s.Cfg.MaxPackageSize }
func (d *datagram) CloseAfterFlush()             { d.closed.Store(true) }
func (d *datagram) Draining() bool               { return d.s.Draining.Load() }
func (d *datagram) Close() error                 { d.closed.Store(true); return nil }
func (d *datagram) Destroy()                     { d.closed.Store(true) }
func (d *datagram) LocalAddr() net.Addr          { return d.pc.LocalAddr() }
func (d *datagram) RemoteAddr() net.Addr         { return d.addr }
func (d *datagram) Transport() string            { return d.s.Cfg.Transport }
func (d *datagram) Protocol() protocols.Protocol { return d.s.Cfg.Protocol }
func (d *datagram) PauseRecv()                   {}
func (d *datagram) ResumeRecv()                  {}
func (d *datagram) BytesRead() uint64            { return d.bytesIn.Load() }
func (d *datagram) BytesWritten() uint64         { return d.bytesOut.Load() }
func (d *datagram) SendBufferLen() int           { return 0 }
func (d *datagram) CreatedAt() time.Time         { return d.created }

// State returns the protocol's state of this datagram. Safe for concurrent
// use (see core.Conn.State).
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
