//go:build unix

package master

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/goes-project/goes/connections"
)

type socket struct {
	l  Listener
	ln net.Listener
	pc net.PacketConn
	// share balances the connections of a stream listener's workers
	// (connections.AcceptShare); nil for one worker, datagrams, or where
	// it cannot be made. held[i] is the pid of the process given slot i
	// (0: free; -1: being started); run loop only.
	share *connections.AcceptShare
	held  []int
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
	if s.share != nil {
		s.share.Close()
		s.share = nil
	}
}

// openShare gives a stream listener of more than one worker its accept
// share: a slot for each worker, and as many again for the replacements
// that overlap them (recycling) and for the retiring processes they
// replace. Without one (an error) the workers accept without balancing.
func (m *master) openShare(s *socket) {
	if s.ln == nil || s.l.Count < 2 {
		return
	}
	sh, err := connections.NewAcceptShare(2*s.l.Count + 4)
	if err != nil {
		m.log.Warn().Err(err).Str("name", s.l.Name).Msg("accept balancing off")
		return
	}
	s.share, s.held = sh, make([]int, sh.Slots())
}

// takeShareSlot reserves a free slot of s's share for a worker about to
// start; -1 when s has no share or every slot is held (that worker then
// accepts without balancing).
func (s *socket) takeShareSlot() int {
	if s.share == nil {
		return -1
	}
	for i, pid := range s.held {
		if pid == 0 {
			s.held[i] = -1
			s.share.Reset(i)
			return i
		}
	}
	return -1
}

// releaseShareSlot frees slot i once its process has exited (or never
// started): nothing writes it any more, so it is cleared for the next.
func (s *socket) releaseShareSlot(i int) {
	if s.share == nil || i < 0 || i >= len(s.held) {
		return
	}
	s.share.Reset(i)
	s.held[i] = 0
}

func (m *master) openSockets() error {
	listen, listenPacket := m.o.Listen, m.o.ListenPacket
	for i, l := range m.o.Listeners {
		if m.upg != nil {
			listen = func(string, string) (net.Listener, error) { return m.upgListen(i, l) }
			listenPacket = func(string, string) (net.PacketConn, error) { return m.upgListenPacket(i, l) }
		}
		s := &socket{l: l}
		adopted, err := m.adoptedSocket(i, s)
		if !adopted {
			err = m.retryBusy(func() (err error) {
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
				return err
			})
		}
		if err != nil {
			// err names the network and the address (net.OpError).
			return fmt.Errorf("master: listener %q: %w", l.Name, err)
		}
		m.openShare(s)
		m.sockets = append(m.sockets, s)
		bound := l.Addr
		if s.ln != nil {
			bound = s.ln.Addr().String()
		} else if s.pc != nil {
			bound = s.pc.LocalAddr().String()
		}
		m.bound = append(m.bound, bound)
		m.log.Info().Str("listen", l.Network+"://"+bound).Str("name", l.Name).Int("count", l.Count).Bool("adopted", adopted).Msg("listening")
	}
	m.closeAdopted() // sockets of listeners this config no longer has
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
