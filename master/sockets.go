//go:build unix

package master

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

type socket struct {
	l  Listener
	ln net.Listener
	pc net.PacketConn
}

func (s *socket) conn() syscall.Conn {
	if s.ln != nil {
		return s.ln.(syscall.Conn)
	}
	return s.pc.(syscall.Conn)
}

func (s *socket) close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		s.pc.Close()
	}
}

func (m *master) openSockets() error {
	listen, listenPacket := m.o.Listen, m.o.ListenPacket
	for i, l := range m.o.Listeners {
		if m.upg != nil {
			listen = func(string, string) (net.Listener, error) { return m.upgListen(i, l) }
			listenPacket = func(string, string) (net.PacketConn, error) { return m.upgListenPacket(i, l) }
		}
		s := &socket{l: l}
		var err error
		switch l.Network {
		case "udp", "udp4", "udp6", "unixgram":
			s.pc, err = listenPacket(l.Network, l.Addr)
		case "unix":
			s.ln, err = listen(l.Network, l.Addr)
			if ul, ok := s.ln.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false)
			}
		default:
			s.ln, err = listen(l.Network, l.Addr)
		}
		if err != nil {
			// err names the network and the address (net.OpError).
			return fmt.Errorf("master: listener %q: %w", l.Name, err)
		}
		m.sockets = append(m.sockets, s)
		bound := l.Addr
		if s.ln != nil {
			bound = s.ln.Addr().String()
		} else if s.pc != nil {
			bound = s.pc.LocalAddr().String()
		}
		m.bound = append(m.bound, bound)
		m.log.Info().Str("listen", l.Network+"://"+bound).Str("name", l.Name).Int("count", l.Count).Msg("listening")
	}
	return m.openAdmin()
}

// listenDefault is net.Listen, after removing a stale Unix socket file.
func listenDefault(network, addr string) (net.Listener, error) {
	if network == "unix" {
		removeStaleSocket(addr)
	}
	return net.Listen(network, addr)
}

// removeStaleSocket removes a Unix socket file nobody listens on.
func removeStaleSocket(path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return
	}
	os.Remove(path)
}

func (m *master) closeSockets(unlink bool) {
	for _, s := range m.sockets {
		s.close()
		if unlink && s.l.Network == "unix" {
			os.Remove(s.l.Addr)
		}
	}
	m.sockets = nil
}
