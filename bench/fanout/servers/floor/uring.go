package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/bench/fanout/uring"
)

// The floor-uring row: the floor with an io_uring send path. On a publish
// the publisher's goroutine encodes the frame once and hands it and the
// member list to the ring's goroutine (locked to its thread, which made
// the ring), which queues one IORING_OP_SEND of the one frame per member
// and submits them in batches of the ring's size, one io_uring_enter per
// batch that also waits for the batch's completions (package
// bench/fanout/uring). A send that did not write the whole frame (EAGAIN,
// a short write) is finished as the floor does: write(2), and poll(2)
// while the socket buffer is full.

// ringer owns the ring on a goroutine locked to its thread: SINGLE_ISSUER
// rings take submissions from the thread that made them only.
type ringer struct {
	r    *uring.Ring
	reqs chan sendReq
}

type sendReq struct {
	fds   []int
	frame []byte
	short []uring.Short
	done  chan sendRes
}

type sendRes struct {
	short []uring.Short
	err   error
}

func startRing(o uring.Options) (*ringer, error) {
	g := &ringer{reqs: make(chan sendReq)}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the program
		r, err := uring.New(o)
		ready <- err
		if err != nil {
			return
		}
		g.r = r
		for q := range g.reqs {
			short, err := r.SendAll(q.fds, q.frame, q.short)
			q.done <- sendRes{short, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return g, nil
}

// publishRing sends s.frame to every member: one IORING_OP_SEND each;
// the sends the ring did not finish, as the floor. mu is held.
func (s *server) publishRing() {
	done := make(chan sendRes, 1)
	s.ring.reqs <- sendReq{fds: s.members, frame: s.frame, short: s.short[:0], done: done}
	res := <-done
	if res.err != nil {
		fmt.Fprintln(os.Stderr, res.err)
		os.Exit(1)
	}
	s.short = res.short
	for _, sh := range res.short {
		s.shorts++
		if sh.Err == nil || errors.Is(sh.Err, unix.EAGAIN) {
			s.write(sh.FD, s.frame[sh.Sent:])
		} // otherwise the receiver is gone
	}
}
