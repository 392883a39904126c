package http

import (
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchHTML returns an HTML page of about n bytes: a table of rows with
// varied words and numbers, as a listing page would be.
func benchHTML(n int) []byte {
	words := []string{"goes", "socket", "server", "worker", "master", "reload", "epoll", "timer",
		"protocol", "frame", "websocket", "connection", "buffer", "drain", "signal", "daemon"}
	rng := rand.New(rand.NewPCG(7, 11))
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html><head><title>goes</title></head><body><table>\n")
	for b.Len() < n-40 {
		fmt.Fprintf(&b, "<tr class=\"row\"><td>%d</td><td>%s %s</td><td><a href=\"/item/%d\">%s</a></td></tr>\n",
			rng.IntN(100000), words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1<<20), words[rng.IntN(len(words))])
	}
	b.WriteString("</table></body></html>\n")
	return []byte(b.String())
}

// BenchmarkCompress answers a GET asking for gzip with Respond and a
// 16 KiB HTML body: identity (compression off), coded at two levels,
// and compress/gzip alone on the same body (the floor: a pooled writer
// into a reused buffer, no HTTP). out-bytes is the length of what is
// written.
func BenchmarkCompress(b *testing.B) {
	body := benchHTML(16 << 10)
	in := []byte(benchGet) // Accept-Encoding: gzip, deflate, br
	respond := func(b *testing.B, p *Protocol) {
		c := newTestConn(p)
		resp := &Response{Body: body}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			c.out = c.out[:0]
			if n, err := p.Input(c, in); err != nil || n != len(in) {
				b.Fatalf("Input = %d, %v", n, err)
			}
			if _, err := p.Decode(c, in); err != nil {
				b.Fatal(err)
			}
			if err := Respond(c, resp); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(c.out)), "out-bytes")
	}
	b.Run("impl=respond/coding=identity", func(b *testing.B) { respond(b, &Protocol{}) })
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		b.Run(fmt.Sprintf("impl=respond/coding=gzip/level=%d", level), func(b *testing.B) {
			respond(b, &Protocol{Compress: CompressOptions{Enabled: true, Level: level}})
		})
	}
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		b.Run(fmt.Sprintf("impl=stdlib/coding=gzip/level=%d", level), func(b *testing.B) {
			var out appendBuffer
			w, err := gzip.NewWriterLevel(&out, level)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				out = out[:0]
				w.Reset(&out)
				if _, err := w.Write(body); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "out-bytes")
		})
	}
}
