// Package epoll is the epoll engine's interface to the kernel: the system
// calls it makes (Sys, a struct of funcs so that a test can fault one call
// on cue), the poller (an epoll instance and the eventfd that wakes it,
// parked in the Go netpoller), the event masks and tags, and the io_uring
// send batch (SendBatch, over internal/uring). It knows nothing of
// connections, protocols or the Server: the engine's event loops
// (connections/epoll_*_linux.go) drive it, and the package connections
// above makes no epoll or io_uring call of its own (connections'
// deps_test keeps it so).
//
// The name is the engine's: issue 19 moves the loops, their connections
// and their accept path here too, over a shared core, once the core's
// contract is exported (connections/ENGINES.md has the plan).
//
// It exists on Linux only.
package epoll
