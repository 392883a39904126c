//go:build !unix

package connections

import "syscall"

// tryWrite is the portable fallback: it writes nothing and leaves the
// blocking write to the writer goroutine.
func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, nil }
