package http

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"testing"
)

// countConn is a testConn whose WriteRaw only counts, as a send buffer
// that is always written out at once.
type countConn struct {
	*testConn
	n int
}

func (c *countConn) WriteRaw(b []byte) error {
	c.n += len(b)
	return nil
}

// BenchmarkStreamWriteMem compares StreamWriter.Write of a 1 KiB piece
// (framed and copied into the connection's send buffer) with net/http's
// own chunked writer (httputil.NewChunkedWriter is the writer net/http's
// server uses) followed by the Flush a ResponseWriter needs to send each
// piece, both into a sink that takes everything.
func BenchmarkStreamWriteMem(b *testing.B) {
	piece := bytes.Repeat([]byte("x"), 1024)
	b.Run("impl=goes", func(b *testing.B) {
		_, tc := streamConn(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
		c := &countConn{testConn: tc}
		w, err := Stream(c, &Response{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(piece)))
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Write(piece); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.End(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("impl=net-http-chunked", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, 4<<10) // net/http's per-connection writer size
		cw := httputil.NewChunkedWriter(bw)
		b.SetBytes(int64(len(piece)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cw.Write(piece); err != nil {
				b.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		cw.Close()
	})
}
