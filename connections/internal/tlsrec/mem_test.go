package tlsrec_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/goes-project/goes/connections/internal/tlsrec"
	"github.com/goes-project/goes/internal/testkit"
)

// BenchmarkIdleSession reports what an established, idle session keeps
// on the heap (B/session, from runtime.MemStats over n sessions, the
// clients gone): after the handshake only, and after it has decrypted a
// record of each size (crypto/tls's input buffer grows to the largest
// record seen and keeps it; the transport itself keeps nothing).
func BenchmarkIdleSession(b *testing.B) {
	const n = 200
	conf := serverConf(b)
	for _, vers := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, rec := range []int{0, 1 << 10, 16 << 10} {
			b.Run(fmt.Sprintf("v%x/record%d", vers, rec), func(b *testing.B) {
				var per float64
				for i := 0; i < b.N; i++ {
					per = idleBytes(b, conf, vers, n, rec)
				}
				b.ReportMetric(per, "B/session")
			})
		}
	}
}

func idleBytes(b *testing.B, conf *tls.Config, vers uint16, n, rec int) float64 {
	b.Helper()
	cc := clientConf()
	cc.MaxVersion = vers
	cc.DynamicRecordSizingDisabled = true // records of 16 KiB from the start
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	keep := make([]*tlsrec.Session, n)
	for i := range keep {
		s, c := establishWith(b, conf, cc)
		if rec > 0 {
			// The client's record, decrypted by the session.
			rb := recordOf(b, c, testkit.Pattern(rec))
			s.Open(rb)
			p := make([]byte, 1<<14)
			got := 0
			for {
				k, err := s.Read(p)
				got += k
				if errors.Is(err, tlsrec.ErrWouldBlock) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if got != rec {
				b.Fatalf("decrypted %d of %d", got, rec)
			}
		}
		keep[i] = s
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	if f := os.Getenv("TLSREC_HEAPPROFILE"); f != "" {
		w, err := os.Create(f)
		if err == nil {
			pprof.WriteHeapProfile(w)
			w.Close()
		}
	}
	runtime.KeepAlive(keep)
	return per
}
