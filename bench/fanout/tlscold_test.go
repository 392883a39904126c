package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"

	"github.com/goes-project/goes/internal/testkit"
)

// BenchmarkSealSessions is the seal of a fan-out as the wss row makes it:
// one frame of the run's size (66 bytes: a 64-byte message) sealed for
// each of n distinct established TLS 1.3 sessions in turn, round-robin,
// so that with n large every seal finds its session's state (the
// tls.Conn, its AES-GCM key schedule and GHASH table, its sequence
// number) out of the CPU's caches, as a delivery to the 19,000 members
// of the wss row does. sessions=1 is BenchmarkSeal: the state hot.
//
//	cd bench && go test -run XXX -bench SealSessions -benchtime 3s ./fanout
//
// ns/op and cpu-ns/op are per record; the setup (n handshakes in memory)
// is outside the timer.
func BenchmarkSealSessions(b *testing.B) {
	pair := testkit.SelfSigned(b)
	for _, n := range []int{1, 1000, 19000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			conns := make([]*tls.Conn, n)
			for i := range conns {
				conns[i] = discardSession(b, pair)
			}
			b.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			i := 0
			runtimeLock(b)
			measure(b, func(p []byte) (int, error) {
				c := conns[i]
				if i++; i == len(conns) {
					i = 0
				}
				return c.Write(p)
			})
		})
	}
}

// discardSession returns a server tls.Conn, its TLS 1.3 handshake done
// with a client of the run's kind (X25519) over a net.Pipe, that drops
// what it writes from then on; the client is let go.
func discardSession(b *testing.B, pair tls.Certificate) *tls.Conn {
	sp, cp := net.Pipe()
	dc := &discardConn{Conn: sp}
	srv, _ := handshake(b, dc, cp, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12, SessionTicketsDisabled: true}, tls.VersionTLS13)
	if v := srv.ConnectionState().Version; v != tls.VersionTLS13 {
		b.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(v))
	}
	dc.discard.Store(true)
	cp.Close()
	return srv
}
