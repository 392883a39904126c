//go:build !unix

package std

import "syscall"

// rawWriter is the portable fallback: it writes nothing and leaves the
// blocking write to the writer goroutine.
type rawWriter struct{ rc syscall.RawConn }

func (w *rawWriter) init(rc syscall.RawConn)      { w.rc = rc }
func (w *rawWriter) tryWrite([]byte) (int, error) { return 0, nil }
