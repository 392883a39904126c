//go:build !unix

// Package master is the supervisor of goes (see the Unix build): it forks
// worker processes, passes them listening sockets and handles signals,
// which needs a Unix system. On other platforms it has only
// ErrUnsupported.
package master

import "errors"

// ErrUnsupported: goes's master and workers need a Unix system (Linux,
// macOS, the BSDs).
var ErrUnsupported = errors.New("master: not supported on this platform (goes needs Unix: Linux, macOS, BSD)")
