//go:build !unix

package orphan

import "net"

// Serve returns at once: there are no worker sockets where there is no
// Unix (a worker whose master dies drains, as it did before orphans).
func Serve(ln *net.UnixListener, h Handler, log func(msg string, err error)) {}
