//go:build linux

package epoll

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tcpPairs opens n loopback TCP connections and returns the accepted
// ends' descriptors (kept open by the accepted conns) and the dialled
// ends.
func tcpPairs(t *testing.T, n int) (fds []int32, dialled []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(); a.Close() })
		sc, err := a.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		sc.Control(func(u uintptr) { fds = append(fds, int32(u)) })
		dialled = append(dialled, d)
	}
	return fds, dialled
}

// TestSendBatch gathers sends on real sockets: below RingMin the batch
// leaves them to write(2) (Send reports false and sends nothing); at
// RingMin it sends them all with the ring, each Result is the bytes sent
// and each peer reads exactly its own message. A full batch says so.
func TestSendBatch(t *testing.T) {
	sys := Live()
	var b SendBatch
	if err := b.Open(&sys); err != nil {
		t.Fatalf("Open: %v (io_uring is needed by this test, as by internal/uring's)", err)
	}
	defer b.Close()
	if !b.Usable() {
		t.Fatal("Usable is false after Open succeeded")
	}
	fds, dialled := tcpPairs(t, RingMin)
	msg := func(i int) []byte { return []byte(fmt.Sprintf("message %d\n", i)) }

	for i := range RingMin - 1 {
		if b.Add(fds[i], msg(i)) {
			t.Fatalf("Add %d reported a full batch", i)
		}
	}
	if via, err := b.Send(); via || err != nil {
		t.Fatalf("Send of %d sends = %v, %v; want write(2)'s turn (false, nil)", RingMin-1, via, err)
	}
	dialled[0].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := dialled[0].Read(make([]byte, 64)); n != 0 {
		t.Fatalf("a send below RingMin went out: the peer read %d bytes", n)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatalf("Len after Reset = %d", b.Len())
	}

	for i := range RingMin {
		b.Add(fds[i], msg(i))
	}
	if b.Len() != RingMin {
		t.Fatalf("Len = %d, want %d", b.Len(), RingMin)
	}
	if via, err := b.Send(); !via || err != nil {
		t.Fatalf("Send of %d sends = %v, %v; want the ring (true, nil)", RingMin, via, err)
	}
	for i := range RingMin {
		if n, errno := b.Result(i); n != len(msg(i)) || errno != 0 {
			t.Errorf("Result(%d) = %d, %v; want %d bytes", i, n, errno, len(msg(i)))
		}
		dialled[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(msg(i)))
		if _, err := io.ReadFull(dialled[i], got); err != nil || !bytes.Equal(got, msg(i)) {
			t.Errorf("peer %d read %q, %v; want %q", i, got, err, msg(i))
		}
	}
	b.Reset()

	full := false
	for i := range RingEntries {
		full = b.Add(fds[i%len(fds)], nil)
		if full != (i == RingEntries-1) {
			t.Fatalf("Add %d of %d: full = %v", i+1, RingEntries, full)
		}
	}
	b.Reset()
}

// TestSendBatchWithoutRing: with no NewRing (or NoIOUring) the batch has
// no ring and Open says nothing is wrong.
func TestSendBatchWithoutRing(t *testing.T) {
	sys := Live()
	sys.NewRing = nil
	var b SendBatch
	if err := b.Open(&sys); err != nil || b.Usable() {
		t.Fatalf("Open without NewRing = %v, Usable %v; want nil, false", err, b.Usable())
	}
	b.Close()
}

// TestPollerWakes: a wake-up is wanted only while the loop sleeps, is
// claimed once, and wakes a blocked Wait with a TagWake event.
func TestPollerWakes(t *testing.T) {
	sys := Live()
	var p Poller
	if err := p.Open(&sys); err != nil {
		t.Fatal(err)
	}
	defer p.CloseWake()
	defer p.CloseEpoll()
	if p.NeedsSignal() {
		t.Fatal("NeedsSignal while the loop works")
	}
	p.Sleep()
	if !p.NeedsSignal() {
		t.Fatal("no NeedsSignal while the loop sleeps")
	}
	if p.NeedsSignal() {
		t.Fatal("NeedsSignal twice: the first answer should have claimed the wake-up")
	}
	done := make(chan struct{})
	var n int
	var errno unix.Errno
	go func() {
		defer close(done)
		n, errno = p.Wait(true)
	}()
	p.Signal()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after Signal")
	}
	if errno != 0 || n != 1 || p.Events[0].Pad != TagWake {
		t.Fatalf("Wait = %d events (first tag %d), %v; want 1 TagWake", n, p.Events[0].Pad, errno)
	}
	p.Woken()
	p.Sleep()
	if !p.NeedsSignal() {
		t.Fatal("no NeedsSignal after Woken")
	}
}
