package main

import (
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/bench/fanout/wire"
	"github.com/goes-project/goes/internal/testkit"
)

// The floor under the wss row: what one delivery costs at least over TLS
// against plain ws. Every member's record is sealed on its own (its own
// keys and sequence number), so a wss delivery is the plain one plus one
// AES-GCM seal of the frame (and 22 more bytes through the socket).
//
//	cd bench && go test -run XXX -bench . -benchtime 200000x ./fanout
//
// Each reports ns/op (wall) and cpu-ns/op, the writing thread's CPU time
// (getrusage RUSAGE_THREAD, the goroutine locked to its thread).

// frame is what a receiver of the benchmark gets: a server (unmasked)
// text frame of the default 64-byte message.
func frame() []byte {
	return wire.AppendFrame(nil, wire.OpText, wire.Message(1, time.Now().UnixNano(), 64), false)
}

// discardConn passes the handshake through, then drops what is written.
type discardConn struct {
	net.Conn
	discard atomic.Bool
}

func (c *discardConn) Write(b []byte) (int, error) {
	if c.discard.Load() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// handshake makes a server tls.Conn on sc with conf and a client on cc
// (the run's kind: X25519, at most maxVersion) and runs their handshake.
func handshake(b *testing.B, sc, cc net.Conn, conf *tls.Config, maxVersion uint16) (srv, cli *tls.Conn) {
	srv = tls.Server(sc, conf)
	cli = tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion, CurvePreferences: []tls.CurveID{tls.X25519}})
	errc := make(chan error, 1)
	go func() { errc <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return srv, cli
}

// tlsPair handshakes a server tls.Conn on sc (a self-signed certificate and
// the client's X25519 offer) and returns it.
func tlsPair(b *testing.B, sc, cc net.Conn, maxVersion uint16) *tls.Conn {
	srv, cli := handshake(b, sc, cc, &tls.Config{Certificates: []tls.Certificate{testkit.SelfSigned(b)}, MinVersion: tls.VersionTLS12}, maxVersion)
	b.Logf("%s %s", tls.VersionName(srv.ConnectionState().Version), tls.CipherSuiteName(srv.ConnectionState().CipherSuite))
	go io.Copy(io.Discard, cli) // the client drains
	return srv
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func measure(b *testing.B, write func([]byte) (int, error)) {
	f := frame()
	b.SetBytes(int64(len(f)))
	b.ResetTimer()
	c0 := threadCPU()
	for b.Loop() {
		if _, err := write(f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(threadCPU()-c0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkSeal is the seal alone: tls.Conn.Write of one frame over a
// transport that drops the record.
func BenchmarkSeal(b *testing.B) {
	for _, v := range []struct {
		name string
		max  uint16
	}{{"tls13", tls.VersionTLS13}, {"tls12", tls.VersionTLS12}} {
		b.Run(v.name, func(b *testing.B) {
			sp, cp := net.Pipe()
			dc := &discardConn{Conn: sp}
			srv := tlsPair(b, dc, cp, v.max)
			defer srv.Close()
			dc.discard.Store(true)
			runtimeLock(b)
			measure(b, srv.Write)
		})
	}
}

// BenchmarkWrite is one frame to a loopback TCP socket, plain (a write(2)
// of the frame, what the plain ws row makes per member) and through a
// tls.Conn (the seal and a write(2) of the record), the peer draining.
func BenchmarkWrite(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "plain"
		if secure {
			name = "tls13"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			sc := <-accepted
			if sc == nil {
				b.Fatal("accept failed")
			}
			defer sc.Close()
			var w func([]byte) (int, error) = sc.Write
			if secure {
				w = tlsPair(b, sc, cc, tls.VersionTLS13).Write
			} else {
				go io.Copy(io.Discard, cc)
			}
			runtimeLock(b)
			measure(b, w)
		})
	}
}

// runtimeLock keeps the benchmark's goroutine on its thread for
// threadCPU, until it ends.
func runtimeLock(b *testing.B) {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
}
