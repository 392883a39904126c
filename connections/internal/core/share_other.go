//go:build !unix

package core

import "os"

// NewAcceptShare fails: this platform has no shared memory here.
func NewAcceptShare(int) (*AcceptShare, error) { return nil, ErrAcceptShareUnsupported }

// OpenAcceptShare fails: this platform has no shared memory here.
func OpenAcceptShare(f *os.File) (*AcceptShare, error) {
	f.Close()
	return nil, ErrAcceptShareUnsupported
}

// File is nil here.
func (a *AcceptShare) File() *os.File { return nil }

// Close does nothing here.
func (a *AcceptShare) Close() error { return nil }
