//go:build unix

package connections_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
)

// produce sends numbered 1 KiB pieces from from up to n to c, waiting
// with WaitDrained whenever the send buffer is full (the producer pattern
// of WaitDrained's doc), and returns the number of the first piece not
// sent and how many waits it made.
func produce(ctx context.Context, c connections.Connection, from, n int) (next, waits int, err error) {
	for i := from; i < n; i++ {
		piece := fmt.Sprintf("%08d", i) + strings.Repeat(".", 1015) + "\n"
		for {
			err := c.Send(piece, true)
			if !errors.Is(err, connections.ErrSendBufferFull) {
				if err != nil {
					return i, waits, err
				}
				break
			}
			waits++
			if err := connections.WaitDrained(ctx, c); err != nil {
				return i, waits, err
			}
		}
	}
	return n, waits, nil
}

// checkPieces reads n pieces of produce from r and checks their order.
func checkPieces(t *testing.T, r io.Reader, n int) {
	t.Helper()
	buf := make([]byte, 1024)
	for i := range n {
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if want := fmt.Sprintf("%08d", i); string(buf[:8]) != want || buf[1023] != '\n' {
			t.Fatalf("piece %d starts %q", i, buf[:8])
		}
	}
}

// TestWaitDrained: a producer goroutine outruns a peer that reads slowly
// and then not at all; WaitDrained holds it while the send buffer is full,
// gives up with the context, and lets it go on once the peer reads; every
// piece arrives once, in order. A connection that is not full does not
// wait, and a closed one answers ErrClosed.
func TestWaitDrained(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		conns := make(chan connections.Connection, 1)
		_, addr := serve(t, "tcp", connections.Config{
			Engine: engine.Name, CallbackGoroutines: engine.Pool,
			MaxSendBufferSize: 16 << 10,
			Handler: connections.Handler{
				OnConnect: func(c connections.Connection) { conns <- c },
			},
		})
		// A small receive buffer (see smallBuffers), set before
		// connecting.
		d := net.Dialer{Control: smallBuffers(syscall.SO_RCVBUF)}
		peer, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		peer.SetDeadline(time.Now().Add(20 * time.Second))
		c := <-conns
		if err := connections.WaitDrained(context.Background(), c); err != nil {
			t.Fatalf("WaitDrained on an empty buffer: %v", err)
		}

		// The peer does not read: the producer fills the kernel's buffers
		// and then the send buffer, and waits until its context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		const total = 8 << 10 // pieces: 8 MiB, far more than loopback buffers hold
		next, waits, err := produce(ctx, c, 0, total)
		if !errors.Is(err, context.DeadlineExceeded) || waits == 0 || next == 0 || next == total {
			t.Fatalf("producer against a peer that does not read: piece %d, %d waits, %v", next, waits, err)
		}

		// Now the peer reads everything; the producer starts again from
		// the piece it was holding and finishes.
		done := make(chan error, 1)
		go func() {
			_, _, err := produce(context.Background(), c, next, total)
			done <- err
		}()
		checkPieces(t, peer, total)
		if err := <-done; err != nil {
			t.Fatalf("producer: %v", err)
		}

		c.Close()
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "WaitDrained says closed", func() bool {
			return errors.Is(connections.WaitDrained(context.Background(), c), connections.ErrClosed)
		})
	})
}

// TestWaitDrainedClient: a Client's producer waits on the Client's queue
// while it is not connected, and on its connection once it is; every
// piece reaches the peer once, in order.
func TestWaitDrainedClient(t *testing.T) {
	lc := net.ListenConfig{Control: smallBuffers(syscall.SO_RCVBUF)}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := newClient(t, "tcp://"+ln.Addr().String(), connections.ClientConfig{Config: connections.Config{MaxSendBufferSize: 16 << 10}})
	const total = 8 << 10
	// Not connected: the queue fills and the producer waits for it.
	next, waits, err := produce(context.Background(), cl, 0, 16)
	if err != nil || next != 16 || waits != 0 {
		t.Fatalf("queueing: piece %d, %d waits, %v", next, waits, err)
	}
	if err := cl.Send("x", true); !errors.Is(err, connections.ErrSendBufferFull) {
		t.Fatalf("17th KiB on a 16 KiB queue: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := produce(context.Background(), cl, next, total)
		done <- err
	}()
	cl.Connect()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peer.SetDeadline(time.Now().Add(20 * time.Second))
	checkPieces(t, peer, total)
	if err := <-done; err != nil {
		t.Fatalf("producer: %v", err)
	}
	cl.Destroy()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "WaitDrained says closed", func() bool {
		return errors.Is(connections.WaitDrained(context.Background(), cl), connections.ErrClosed)
	})
}
