package tlsrec

import (
	"context"
	"crypto/tls"
	"net"
)

// Config is a server configuration as sessions serve it, made once per
// listener (NewConfig) as tls.Server's would be.
type Config struct {
	// srv is what each session's tls.Server is made with: a copy of the
	// server configuration whose GetConfigForClient gives each handshake
	// a copy of the configuration of now (the ticket keys of now) with
	// the session's key log (keyLog). It is one object for all sessions: crypto/tls
	// keeps the automatic ticket keys of a configuration without its own
	// in the one given to tls.Server.
	srv *tls.Config
}

// NewConfig makes the configuration sessions serve conf with (not
// copied: SetSessionTicketKeys on it, and its fields, apply to the
// handshakes that follow; its GetConfigForClient is called for each).
func NewConfig(conf *tls.Config) *Config {
	c := &Config{srv: conf.Clone()}
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
		if !ok || t.hs == nil || !offloadable(hi) || (use.MaxVersion != 0 && use.MaxVersion < tls.VersionTLS13) {
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
		s.recMem = *r
		r.drop()
		s.rec, s.tc = &s.recMem, nil
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
