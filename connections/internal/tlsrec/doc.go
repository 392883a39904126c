// Package tlsrec serves the server side of a TLS connection from an event
// loop: a Session is crypto/tls's handshake over an in-memory transport
// that the loop feeds with the socket's bytes and empties into the
// socket, then (TLS 1.3 with AES-GCM) this package's record layer with
// the keys that handshake made. The name says what the loop sees of it:
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
//  3. Established, on the loop. A TLS 1.3 session with an AES-GCM suite
//     (what browsers and Go's client negotiate) is handed over: its
//     traffic secrets come from crypto/tls through a Config.KeyLogWriter
//     given to that handshake alone (NewConfig), the records crypto/tls
//     sealed under the server's key (its session tickets) are counted,
//     and from then on this package's record layer (record.go: RFC 8446
//     section 5 framing, crypto/cipher's AES-GCM, alerts, close_notify,
//     KeyUpdate both ways) serves the session; the tls.Conn is let go.
//     Any other session (TLS 1.2, ChaCha20-Poly1305, a configuration
//     whose GetConfigForClient keeps the key log from the session) stays
//     with crypto/tls: Open lends the socket's bytes, Read decrypts until
//     crypto/tls meets "would block" (a net.Error whose Temporary() is
//     true, which crypto/tls does not record as the connection's error),
//     Seal encrypts into the caller's buffer.
//
// Memory of an idle session. Handed over, a session keeps its two AES-GCM
// states, its secrets and sequence numbers (BenchmarkIdleSession: about
// 2 KB for TLS 1.3, the same after a 16 KiB record), and no input between
// records: Read decrypts a record straight into the caller's buffer when
// it fits, in place otherwise, and keeps only the part of a record not
// yet received. Kept by crypto/tls, a session also keeps what crypto/tls
// does not give back: the tls.Conn, its record input buffer (a
// bytes.Buffer grown to the largest record seen: the transport hands
// crypto/tls one record at a time so that it is one record, never a
// socket read) and its handshake message buffer (the ClientHello's
// size), about 4.3 KB for TLS 1.2 and up to 22 KB after a 16 KiB record.
//
// Why a record layer here and not crypto/tls's: crypto/tls's tls.Conn
// keeps those buffers for its life and has no API to give them back; the
// record layer after the handshake is what kTLS moves into the kernel,
// and is small (framing, one AEAD call a record, three post-handshake
// messages). Everything that decides security before it (the handshake,
// certificates, tickets, the key schedule) stays crypto/tls's, and its
// fixes arrive with Go. The AEAD is crypto/cipher's.
//
// kTLS (the kernel's record layer, CONFIG_TLS) would go where the hand-
// over is: the same secrets would move to the socket (setsockopt TLS_TX,
// TLS_RX) and the loop would read and write plaintext, with no Session
// left. It is not built: this kernel has no CONFIG_TLS.
package tlsrec
