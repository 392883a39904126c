package connections

import "github.com/goes-project/goes/connections/internal/core"

// Limits of a TLS listener served by an event-loop engine (TLSServing's
// zero values).
const (
	// DefaultTLSHandshakeTimeout bounds a TLS handshake, from the accept
	// (the ClientHello's arrival included) to its end; past it the
	// connection is closed.
	DefaultTLSHandshakeTimeout = core.DefaultTLSHandshakeTimeout
	// DefaultMaxTLSHandshakes bounds the handshakes in progress past
	// their ClientHello, per Server; a connection whose ClientHello
	// completes beyond it is closed at once.
	DefaultMaxTLSHandshakes = core.DefaultMaxTLSHandshakes
)

// TLSListener is a listener of TLS connections that an event-loop engine
// can serve itself (the full documentation: core.TLSListener).
type TLSListener = core.TLSListener

// TLSServing is how an engine serves a TLSListener (core.TLSServing).
type TLSServing = core.TLSServing
