// Package epoll is EngineEpoll, the epoll engine of package connections:
// the engine (engine_linux.go: its loops, callback pool and watchdog,
// started with the first Serve), its event loops (loop_linux.go), their
// accept path (accept_linux.go) and connections (conn_linux.go: reading,
// writing, the io_uring batches, pool mode), and its interface to the
// kernel: the system calls it makes (Sys, a struct of funcs so that a
// test can fault one call on cue), the poller (an epoll instance and the
// eventfd that wakes it, parked in the Go netpoller), the event masks and
// tags, and the io_uring send batch (SendBatch, over internal/uring).
//
// It implements connections/internal/core's contract (core.Engine,
// core.Ops, core.KickQueue) over core.Runtime and core.Conn; its only
// exported names besides the kernel interface are New, which
// connections' engine table calls, and the tests' seams. Only package
// connections imports it (connections' deps_test keeps it so), and
// connections itself makes no epoll or io_uring call.
//
// It exists on Linux only.
package epoll
