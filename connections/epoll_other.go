//go:build !linux

package connections

import (
	"fmt"
	"net"
)

// epollSupported reports whether this platform has the epoll engine.
const epollSupported = false

// loop stands in for the Linux event loop.
type loop struct{}

// taskPool stands in for the Linux callback pool.
type taskPool struct{}

func epollUsable(net.Listener) bool { return false }

func (s *Server) serveEpoll(ln net.Listener) error {
	return fmt.Errorf("connections: %T: %w", ln, ErrEngineUnsupported)
}

func (s *Server) epollConns(dst []Connection) []Connection { return dst }

func (s *Server) wakeLoops() {}

func (s *Server) waitLoops() {}

func (s *Server) loopCounters(*Stats) {}
