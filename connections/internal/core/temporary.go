package core

import (
	"errors"
	"syscall"
	"time"
)

// IsTemporary reports accept errors that go away by themselves: out of
// file descriptors or buffers, or a connection reset while queued.
func IsTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// CloseFlushTimeout bounds how long Close waits for queued data to reach a
// peer that does not read.
const CloseFlushTimeout = 10 * time.Second

// NextBackoff doubles an accept retry delay from 5 ms up to 1 s.
func NextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	if d *= 2; d > time.Second {
		d = time.Second
	}
	return d
}
