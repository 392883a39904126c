package tlsrec_test

import (
	"fmt"
	"testing"

	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/internal/testkit"
)

// BenchmarkSealSessions is Session.Seal of one 66-byte frame (a 64-byte
// WebSocket message, the fan-out benchmark's) for each of n established
// sessions in turn, round-robin, into one buffer: with n large each seal
// finds its session cold, as a fan-out to n members does. Against
// bench/fanout's BenchmarkSealSessions (tls.Conn.Write alone) it is what
// the session glue adds per record.
//
//	go test -run XXX -bench SealSessions -benchtime 3s ./connections/internal/tlsrec
func BenchmarkSealSessions(b *testing.B) {
	conf := serverConf(b)
	frame := testkit.Pattern(66)
	for _, n := range []int{1, 1000, 19000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ss := make([]*tlsrec.Session, n)
			for i := range ss {
				ss[i] = establish(b, conf)
			}
			b.Cleanup(func() {
				for _, s := range ss {
					s.Close()
				}
			})
			dst := make([]byte, 0, 4096)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				var err error
				if dst, err = ss[i].Seal(dst[:0], frame); err != nil {
					b.Fatal(err)
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}
