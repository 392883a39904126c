package uring

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pairs opens n loopback TCP connections and returns the accepted ends'
// descriptors (kept open by the returned conns) and the dialled ends.
func pairs(t *testing.T, n int) (fds []int, accepted, dialled []net.Conn) {
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
		sc.Control(func(u uintptr) { fds = append(fds, int(u)) })
		accepted, dialled = append(accepted, a), append(dialled, d)
	}
	return fds, accepted, dialled
}

// onThread runs f on a goroutine locked to its thread (SINGLE_ISSUER rings
// are used from the thread that made them) and waits for it.
func onThread(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		f()
	}()
	<-done
}

func TestSendAllDeliversOnceToEach(t *testing.T) {
	fds, _, dialled := pairs(t, 40)
	frame := []byte("\x81\x05hello")
	for _, mode := range []string{"plain", "coop", "single", "defer", "sqpoll", "defer+fixed", "coop+q8", "sqpoll5+fixed+q16"} {
		var short []Short
		var err error
		var sends, enters int64
		onThread(func() {
			o, perr := ParseMode(mode)
			if perr != nil {
				err = perr
				return
			}
			r, nerr := New(o)
			if nerr != nil {
				err = nerr
				return
			}
			defer r.Close()
			for range 2 { // twice: the second reuses the ring (and its registered files)
				if short, err = r.SendAll(fds, frame, short); err != nil {
					return
				}
			}
			sends, enters = r.Sends, r.Enters
		})
		if err != nil {
			t.Fatalf("mode %s: %v", mode, err)
		}
		if len(short) != 0 {
			t.Fatalf("mode %s: short sends %+v", mode, short)
		}
		if sends != int64(2*len(fds)) {
			t.Fatalf("mode %s: %d sends submitted, want %d", mode, sends, 2*len(fds))
		}
		t.Logf("mode %s: %d sends, %d io_uring_enter calls", mode, sends, enters)
		want := bytes.Repeat(frame, 2)
		for i, d := range dialled {
			got := make([]byte, len(want))
			d.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(d, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("mode %s: connection %d read %q, %v; want %q", mode, i, got, err, want)
			}
		}
	}
	// Nothing more arrived on any connection.
	for i, d := range dialled {
		d.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, err := d.Read(make([]byte, 1)); n != 0 || !errors.Is(err, unix.EAGAIN) && !isTimeout(err) {
			t.Fatalf("connection %d: %d more byte(s), %v", i, n, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A receiver that reads nothing fills its socket buffers; its send then
// comes back short (EAGAIN or a part written) while the others succeed.
func TestSendAllReportsFullSocket(t *testing.T) {
	fds, _, dialled := pairs(t, 3)
	if err := unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	fill := make([]byte, 1<<16)
	filled := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.Write(fds[1], fill)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		filled += n
		if time.Now().After(deadline) {
			t.Fatalf("socket buffer not full after %d bytes", filled)
		}
	}
	frame := bytes.Repeat([]byte{'x'}, 1000)
	var short []Short
	var err error
	onThread(func() {
		r, nerr := New(Options{Mode: "test", Entries: 4, Flags: setupSingleIssuer | setupDeferTaskrun})
		if nerr != nil {
			err = nerr
			return
		}
		defer r.Close()
		short, err = r.SendAll(fds, frame, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != 1 || short[0].FD != fds[1] || short[0].Sent >= len(frame) || (short[0].Sent == 0) == (short[0].Err == nil) {
		t.Fatalf("short sends %+v, want one for descriptor %d", short, fds[1])
	}
	if short[0].Err != nil && !errors.Is(short[0].Err, unix.EAGAIN) {
		t.Fatalf("short send error %v, want EAGAIN", short[0].Err)
	}
	for _, i := range []int{0, 2} {
		got := make([]byte, len(frame))
		dialled[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(dialled[i], got); err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
}

func TestParseMode(t *testing.T) {
	o, err := ParseMode("")
	if err != nil || o.Flags != setupSingleIssuer|setupDeferTaskrun || o.Entries != 4096 || o.Fixed {
		t.Fatalf("default mode: %+v, %v", o, err)
	}
	o, err = ParseMode("sqpoll20+fixed+q512")
	if err != nil || o.Flags != setupSQPoll || o.SQIdle != 20*time.Millisecond || !o.Fixed || o.Entries != 512 {
		t.Fatalf("sqpoll20+fixed+q512: %+v, %v", o, err)
	}
	for _, bad := range []string{"nope", "sqpoll+defer", "q0", "q40000", "sqpollx"} {
		if _, err := ParseMode(bad); err == nil {
			t.Fatalf("mode %q accepted", bad)
		}
	}
}
