//go:build linux

package uring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pairs opens n loopback TCP connections and returns the accepted ends'
// descriptors (kept open by the accepted conns) and the dialled ends.
func pairs(t *testing.T, n int) (fds []int32, dialled []net.Conn) {
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

// TestSendDeliversEach sends its own buffer to each of 40 connections,
// twice, through a ring of 8 entries (five batches a call): each reads
// exactly its bytes, and every Res is the length sent.
func TestSendDeliversEach(t *testing.T) {
	fds, dialled := pairs(t, 40)
	r, err := New(8)
	if err != nil {
		t.Fatalf("io_uring here (kernel 6.18, io_uring_disabled 0): %v", err)
	}
	defer r.Close()
	if r.Entries() != 8 {
		t.Fatalf("Entries %d, want 8", r.Entries())
	}
	ops := make([]Op, len(fds))
	for round := range 2 {
		for i, fd := range fds {
			ops[i] = Op{FD: fd, Buf: []byte(fmt.Sprintf("round %d to %d;", round, i))}
		}
		if err := r.Send(ops); err != nil {
			t.Fatal(err)
		}
		for i, op := range ops {
			if int(op.Res) != len(op.Buf) {
				t.Fatalf("round %d, op %d: Res %d, want %d", round, i, op.Res, len(op.Buf))
			}
		}
	}
	for i, d := range dialled {
		want := fmt.Sprintf("round 0 to %d;round 1 to %d;", i, i)
		got := make([]byte, len(want))
		d.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(d, got); err != nil || string(got) != want {
			t.Fatalf("connection %d read %q, %v; want %q", i, got, err, want)
		}
		d.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if n, _ := d.Read(make([]byte, 1)); n != 0 {
			t.Fatalf("connection %d: more than was sent", i)
		}
	}
}

// TestSendReportsFullSocket: a receiver that reads nothing fills its
// socket buffers; its send completes with -EAGAIN or short while the
// others' go whole.
func TestSendReportsFullSocket(t *testing.T) {
	fds, dialled := pairs(t, 3)
	if err := unix.SetsockoptInt(int(fds[1]), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(int(fds[1]), true)
	fill := make([]byte, 1<<16)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := unix.Write(int(fds[1]), fill)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("filling the socket: %v", err)
		}
	}
	r, err := New(4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	frame := bytes.Repeat([]byte{'x'}, 1000)
	ops := []Op{{FD: fds[0], Buf: frame}, {FD: fds[1], Buf: frame}, {FD: fds[2], Buf: frame}}
	if err := r.Send(ops); err != nil {
		t.Fatal(err)
	}
	if ops[1].Res != -int32(unix.EAGAIN) && (ops[1].Res < 0 || int(ops[1].Res) >= len(frame)) {
		t.Fatalf("the full socket's send: Res %d, want -EAGAIN or short", ops[1].Res)
	}
	for _, i := range []int{0, 2} {
		if int(ops[i].Res) != len(frame) {
			t.Fatalf("op %d: Res %d", i, ops[i].Res)
		}
		got := make([]byte, len(frame))
		dialled[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(dialled[i], got); err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
}
