package websocket

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkCodecEcho is the protocol layer's share of an echo: Input and
// Decode of one masked client frame, Encode of the answer. Steady state
// without compression allocates nothing.
func BenchmarkCodecEcho(b *testing.B) {
	for _, size := range []int{16, 1 << 10, 64 << 10} {
		for _, z := range []bool{false, true} {
			name := fmt.Sprintf("size=%s/deflate=%v", sizeName(size), z)
			b.Run(name, func(b *testing.B) {
				p := &Protocol{MaxMessageSize: 1 << 20, Compression: Compression{Enabled: z}}
				hs := fuzzHandshake
				if !z {
					hs = strings.Replace(fuzzHandshake, "Sec-WebSocket-Extensions: permessage-deflate\r\n", "", 1)
				}
				rt := newMemRuntime(b, p, 2<<20, hs)
				msg := []byte(strings.Repeat("goes echo ", size/10+1)[:size])
				var in []byte
				if z {
					in = maskedFrame(true, rsv1Bit, OpText, deflated(string(msg)))
				} else {
					in = maskedFrame(true, 0, OpText, msg)
				}
				pkt := make([]byte, len(in))
				dst := make([]byte, 0, 2*len(in)+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					copy(pkt, in) // Decode unmasks in place
					n, err := p.Input(rt.c, pkt)
					if err != nil || n != len(pkt) {
						b.Fatalf("Input: %d, %v", n, err)
					}
					got, err := p.Decode(rt.c, pkt[:n])
					if err != nil || len(got) != size {
						b.Fatalf("Decode: %d bytes, %v", len(got), err)
					}
					dst, err = p.Encode(rt.c, dst[:0], got)
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUTF8 compares the incremental validator with utf8.Valid.
func BenchmarkUTF8(b *testing.B) {
	text := []byte(strings.Repeat("ascii text and κόσμε and 👋 ", 400))
	b.Run("validator", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		b.ReportAllocs()
		for b.Loop() {
			var v utf8Validator
			if !v.Write(text[:len(text)/3]) || !v.Write(text[len(text)/3:]) || !v.Complete() {
				b.Fatal("invalid")
			}
		}
	})
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
