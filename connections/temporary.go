package connections

import (
	"errors"
	"syscall"
)

// isTemporary reports accept errors that go away by themselves: out of
// file descriptors or buffers, or a connection reset while queued.
func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}
