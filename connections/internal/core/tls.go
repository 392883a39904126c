package core

import (
	"crypto/tls"
	"net"
	"time"
)

// Limits of a TLS listener served by an event-loop engine (TLSServing's
// zero values).
const (
	// DefaultTLSHandshakeTimeout bounds a TLS handshake, from the accept
	// (the ClientHello's arrival included) to its end; past it the
	// connection is closed.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// DefaultMaxTLSHandshakes bounds the handshakes in progress past
	// their ClientHello, per Server; a connection whose ClientHello
	// completes beyond it is closed at once.
	DefaultMaxTLSHandshakes = 1024
)

// TLSListener is a listener of TLS connections that an event-loop engine
// can serve itself: it accepts from the listener under TLS, runs the
// handshakes on a bounded pool and the records on its loops, with
// crypto/tls (connections/internal/tlsrec). Under EngineAuto a TLS
// listener that is not a TLSListener (tls.NewListener's) is served by
// the standard engine, whose connections are its Accept's; so is a
// TLSListener on a platform without an event-loop engine.
type TLSListener interface {
	net.Listener
	// TLS returns the listener under TLS and how to serve it.
	TLS() (raw net.Listener, sv TLSServing)
}

// TLSServing is how an engine serves a TLSListener.
type TLSServing struct {
	// Config is the server configuration, used as tls.Server uses it
	// (not copied: SetSessionTicketKeys on it applies to the
	// handshakes that follow).
	Config *tls.Config
	// HandshakeTimeout bounds a handshake (0: DefaultTLSHandshakeTimeout).
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes in progress (0:
	// DefaultMaxTLSHandshakes).
	MaxHandshakes int
	// Done, when set, is told each connection's handshake result once:
	// its state and nil, or the error that ended it (a connection that
	// closed before its handshake completed included), and the time from
	// the accept. It runs on any goroutine and must not block.
	Done func(st *tls.ConnectionState, err error, took time.Duration)
}

// CutPartialRecord counts (and logs, as the rules' cuts are) a TLS
// connection closed because a record it began did not complete within
// BodyTimeout: a body_timeout, as a partial packet's.
func (s *Runtime) CutPartialRecord() { s.noteCut(cutBody) }
