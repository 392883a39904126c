// Package tlsrec serves the server side of a TLS connection from an event
// loop, with crypto/tls as the implementation: a Session is a *tls.Conn
// over an in-memory transport that the loop feeds with the socket's bytes
// and empties into the socket. The name says what the loop sees of it:
// TLS records in, TLS records out, and plaintext between.
//
// A session has three phases:
//
//  1. Hello, on the loop: Input buffers what the client sends until its
//     ClientHello is complete (the record framing is checked as it
//     comes: anything but a handshake record ends the session at once).
//     A client that sends its hello slowly costs a small buffer and no
//     goroutine; the handshake timeout ends it.
//  2. Handshake, on a Pool goroutine: crypto/tls's handshake runs with a
//     transport whose Read blocks until the loop feeds more (Input) and
//     whose Write keeps the records for the loop to write (Pending; the
//     transport asks the loop to write them before it waits). A handshake
//     that waits for the client gives its CPU slot back while it waits.
//     Handshake errors are sticky in crypto/tls (a "would block" during a
//     handshake would end it), which is why this phase blocks.
//  3. Established, on the loop: the transport never blocks. Open lends
//     the socket's bytes to the session and Read decrypts until crypto/tls
//     meets "would block" (a net.Error whose Temporary() is true, which
//     crypto/tls does not record as the connection's error); Seal
//     encrypts output into the caller's buffer.
//
// Memory of an idle session. The transport keeps no buffer while idle:
// input is lent (Open) and absorbed by crypto/tls before Read reports
// "would block", output is written into the caller's buffer (Seal), and
// what crypto/tls writes by itself (handshake flights, alerts, KeyUpdate
// answers) is kept only until the loop takes it. The transport hands
// crypto/tls one record at a time, so its input buffer (tls.Conn's
// rawInput, a bytes.Buffer) grows to the largest record seen plus 512
// bytes, never to the size of a socket read. What cannot be given back,
// and why: that rawInput buffer and the handshake message buffer
// (tls.Conn's hand, grown to the largest handshake message received, the
// ClientHello) are unexported fields of tls.Conn that crypto/tls keeps
// for the connection's life (bytes.Buffer never shrinks), and the
// connection's keys and cipher state are the session itself. Freeing
// them needs either an API in crypto/tls or a copy of its record layer,
// and this package does neither. BenchmarkIdleSession measures what a
// session keeps.
//
// kTLS (the kernel's record layer, CONFIG_TLS) would go where Established
// begins: after Pool's handshake the keys would move to the socket
// (setsockopt TLS_TX/TLS_RX) and the loop would read and write plaintext,
// with no Session left. crypto/tls exports no traffic secrets for TLS
// (only for QUIC), so that seam needs an API from Go first; it is not
// built.
package tlsrec
