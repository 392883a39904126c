//go:build unix

package worker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/internal/ticketkeys"
)

// Inherited is what a worker process receives from its master across
// exec (internal/procenv names the descriptors): its control channel, its
// listening socket, and, when its master passed them, its worker socket
// (to outlive the master) and its accept-balancing slot.
type Inherited struct {
	Ctl         net.Conn
	Listener    net.Listener   // nil for UDP
	PacketConn  net.PacketConn // UDP only
	Orphan      *Orphan        // nil: the worker drains once its master is gone
	AcceptShare *connections.AcceptShare
	AcceptSlot  int
	TicketKeys  ticketkeys.Set // nil: the master passed none
}

// Inherit takes the descriptors of wenv's worker (udp: its socket is a
// packet conn). info describes its listener for the orphan protocol;
// Inherit fills in the master's pid and the bound address. What only
// costs a feature (the worker socket, accept balancing) is logged, not
// returned.
func Inherit(wenv procenv.WorkerEnv, udp bool, info orphan.Info, log zerolog.Logger) (Inherited, error) {
	var in Inherited
	id := wenv.Identity.ID
	sockFile := os.NewFile(procenv.SocketFD, "listener")
	ctlFile := os.NewFile(procenv.CtlFD, "control")
	if sockFile == nil || ctlFile == nil {
		return in, errors.New("goes: worker started without its sockets")
	}
	ctl, err := net.FileConn(ctlFile)
	ctlFile.Close()
	if err != nil {
		return in, fmt.Errorf("goes: worker %d: control channel: %w", id, err)
	}
	in.Ctl = ctl
	if udp {
		in.PacketConn, err = net.FilePacketConn(sockFile)
	} else {
		in.Listener, err = net.FileListener(sockFile)
	}
	sockFile.Close()
	if err != nil {
		return in, fmt.Errorf("goes: worker %d: listener: %w", id, err)
	}
	if wenv.OrphanTimeout > 0 {
		if in.Orphan, err = orphanSocket(wenv, info, in.Listener, in.PacketConn); err != nil {
			// The worker serves; without its socket it drains as soon as
			// its master is gone, as before.
			log.Warn().Err(err).Msg("no worker socket: this worker will not outlive its master")
		}
	}
	if wenv.TicketKeys {
		// Without them (an error) TLS resumes only on this worker.
		if in.TicketKeys, err = ticketkeys.ReadFile(os.NewFile(procenv.TicketKeysFD, "ticket-keys")); err != nil {
			log.Warn().Err(err).Msg("no TLS session ticket keys from the master: sessions resume on this worker only")
		}
	}
	if wenv.AcceptShare {
		// Without it (an error) the worker accepts without balancing.
		if f := os.NewFile(procenv.AcceptShareFD, "accept-share"); f != nil {
			sh, err := connections.OpenAcceptShare(f)
			if err != nil {
				log.Warn().Err(err).Msg("accept balancing off")
			} else {
				// Mapped until the process exits: a wheel timer of a
				// paused loop may still look at it after Run returns.
				in.AcceptShare, in.AcceptSlot = sh, wenv.AcceptSlot
			}
		}
	}
	return in, nil
}

// TLS is a worker's TLS listener (TLSListener).
type TLS struct {
	// Listener serves TLS: Options.Listener.
	Listener net.Listener
	// SetKeys replaces the session ticket keys (a rotation):
	// Options.TicketKeys.
	SetKeys func(ticketkeys.Set)
	// Counts are its handshakes: Options.TLSCounts.
	Counts func() TLSCounts
}

// TLSListener serves TLS over ln with conf (a copy) and lim. keys, when
// not nil, are the master's session ticket keys (Inherited.TicketKeys),
// shared by all its workers. It counts handshakes (TLSCounts) and logs
// the failed ones, at debug each and at info a summary each minute.
func TLSListener(ln net.Listener, conf *tls.Config, keys ticketkeys.Set, lim TLSLimits, log zerolog.Logger) (TLS, error) {
	if conf == nil {
		return TLS{}, errors.New("tls: no configuration")
	}
	t := newTLSListener(ln, conf, keys, log)
	t.lim = lim
	return TLS{Listener: t, SetKeys: t.setKeys, Counts: t.counts}, nil
}

// orphanSocket reads the worker socket its master passed on
// procenv.OrphanFD: with it the worker outlives its master (Orphan).
func orphanSocket(wenv procenv.WorkerEnv, info orphan.Info, ln net.Listener, pc net.PacketConn) (*Orphan, error) {
	f := os.NewFile(procenv.OrphanFD, "worker-socket")
	if f == nil {
		return nil, errors.New("goes: worker started without its worker socket")
	}
	fl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("goes: worker socket: %w", err)
	}
	ul, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		return nil, fmt.Errorf("goes: worker socket is a %T", fl)
	}
	ul.SetUnlinkOnClose(false)
	var sock syscall.Conn
	if ln != nil {
		sock, info.Bound = ln.(syscall.Conn), ln.Addr().String()
	} else {
		sock, info.Bound = pc.(syscall.Conn), pc.LocalAddr().String()
	}
	info.MasterPID = os.Getppid()
	return &Orphan{
		Listener: ul,
		Timeout:  wenv.OrphanTimeout,
		Info:     info,
		Socket:   func() (*os.File, error) { return procenv.DupFile(sock, "listener") },
	}, nil
}

// PipeLog is a worker's log output when its master copies it to the log
// (procenv.WorkerEnv.LogPipe): stderr, a pipe to the master, until the
// returned masterGone is called, then file. Once the master is gone a
// write to its pipe fails (EPIPE; SIGPIPE is caught) rather than killing
// the worker.
func PipeLog(file string) (out io.Writer, masterGone func()) {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	pw := &pipeWriter{file: file}
	return pw, func() { pw.detach() }
}

// pipeWriter is a worker's log output when its master copies it
// (procenv.WorkerEnv.LogPipe): the pipe on stderr until the master is gone,
// then the log file, which reopenLog puts on stdout and stderr. The worker
// says when the master is gone (detach, at EOF on its control channel),
// before it logs its drain: the dying master's end of the pipe may still
// be open a moment, and what goes into it then is lost. A write that
// fails with EPIPE (SIGPIPE being caught) detaches too. Safe for
// concurrent use.
type pipeWriter struct {
	file     string
	mu       sync.Mutex
	detached atomic.Bool
}

func (p *pipeWriter) Write(b []byte) (int, error) {
	n, err := os.Stderr.Write(b)
	if err == nil || !errors.Is(err, syscall.EPIPE) || p.file == "" || p.detach() != nil {
		return n, err
	}
	return os.Stderr.Write(b) // to the file now
}

// detach points stdout and stderr at the log file, once (nil when that is
// done, or there is no file).
func (p *pipeWriter) detach() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.detached.Load() || p.file == "" {
		return nil
	}
	if err := ReopenLog(p.file); err != nil {
		return err
	}
	p.detached.Store(true)
	return nil
}
