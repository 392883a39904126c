// Package rawfd is what the benchmark clients on raw epoll share: a
// non-blocking socket read or written as if it blocked, until a deadline.
package rawfd

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Wait polls fd for ev until deadline.
func Wait(fd int, ev int16, deadline time.Time) error {
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return os.ErrDeadlineExceeded
		}
		p := []unix.PollFd{{Fd: int32(fd), Events: ev}}
		n, err := unix.Poll(p, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
}

// WriteAll writes all of b to the non-blocking fd, waiting while it is full.
func WriteAll(fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == nil:
			b = b[n:]
		case errors.Is(err, unix.EAGAIN):
			if err := Wait(fd, unix.POLLOUT, deadline); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR):
		default:
			return err
		}
	}
	return nil
}

// ReadMore appends what fd has to buf, waiting until it has something.
func ReadMore(fd int, buf []byte, deadline time.Time) ([]byte, error) {
	var tmp [4096]byte
	for {
		n, err := unix.Read(fd, tmp[:])
		switch {
		case err == nil && n == 0:
			return buf, errors.New("closed by the server")
		case err == nil:
			return append(buf, tmp[:n]...), nil
		case errors.Is(err, unix.EAGAIN):
			if err := Wait(fd, unix.POLLIN, deadline); err != nil {
				return buf, err
			}
		case errors.Is(err, unix.EINTR):
		default:
			return buf, err
		}
	}
}
