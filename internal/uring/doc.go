// Package uring is the io_uring send path of goes' event loops: a ring
// (io_uring_setup and mmap through golang.org/x/sys/unix) on which Send
// submits a batch of IORING_OP_SEND, one per socket, with one
// io_uring_enter that also reaps their completions. On a loopback or any
// path where the sender's thread runs the receiver's wake-up, a batch
// keeps the CPU until it is done where one write(2) per socket returns to
// user space, is preempted by the receiver it woke and has the Go
// runtime's sysmon watch it: bench/README.md ("io_uring: below the
// floor?") measured 0.7–0.8× the CPU of one write(2) per member for a
// fan-out, the same kernel work per send otherwise.
//
// A Ring is used by one goroutine at a time (an event loop); it needs no
// particular OS thread (no SINGLE_ISSUER).
//
// It exists on Linux only.
package uring
