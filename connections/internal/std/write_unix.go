//go:build unix

package std

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// rawWriter makes non-blocking write attempts on a socket through its
// RawConn without allocating: the callback RawConn.Write takes is made
// once, in init, and its inputs and results live in the rawWriter. It is
// used by one writer at a time (the connection's core.FWriting owner).
type rawWriter struct {
	rc  syscall.RawConn // nil: no attempts (a conn without one, like TLS)
	fn  func(fd uintptr) bool
	b   []byte
	n   int
	err error
}

// init binds w to rc.
func (w *rawWriter) init(rc syscall.RawConn) {
	w.rc = rc
	w.fn = w.write
}

func (w *rawWriter) write(fd uintptr) bool {
	for {
		w.n, w.err = unix.Write(int(fd), w.b)
		if w.err != unix.EINTR {
			return true
		}
	}
}

// tryWrite makes one non-blocking write attempt of b and returns how much
// the kernel took; a full socket buffer is not an error.
func (w *rawWriter) tryWrite(b []byte) (int, error) {
	w.b = b
	err := w.rc.Write(w.fn)
	n, werr := w.n, w.err
	w.b, w.err = nil, nil
	if err != nil {
		return 0, err
	}
	if werr == unix.EAGAIN {
		return 0, nil
	}
	return max(n, 0), werr
}
