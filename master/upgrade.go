//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/cloudflare/tableflip"
	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/ipc"
)

const (
	// lockFileName names the run directory's lock among the files a
	// master hands to its successor: the successor holds the same lock.
	lockFileName = "goes-lock"
	// envGeneration carries the generation number to a new master.
	envGeneration = "GOES_GENERATION"
	// envRoute carries the first worker route to a new master.
	envRoute = "GOES_NEXT_ROUTE"
	// routeReserve is how many routes an upgrading master keeps for its
	// own respawns while the new master starts: the new one starts that
	// far ahead.
	routeReserve = 1 << 16
)

// IsUpgrade reports whether this process is a new master started by an
// upgrade (its predecessor still runs and holds the run directory).
func IsUpgrade() bool { return os.Getenv(tableflipEnv) != "" }

// startUpgrader sets up tableflip: sockets come from the previous master
// when there is one, and so does the run directory's lock.
func (m *master) startUpgrader() error {
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: m.o.UpgradeTimeout})
	if err != nil {
		return fmt.Errorf("master: upgrader: %w", err)
	}
	m.upg = upg
	if !upg.HasParent() {
		return nil
	}
	m.parentGone = false
	if g, err := strconv.Atoi(os.Getenv(envGeneration)); err == nil && g > 0 {
		m.gen = g
	}
	if r, err := strconv.ParseUint(os.Getenv(envRoute), 10, 32); err == nil {
		m.nextRoute = uint32(r)
	}
	f, err := upg.File(lockFileName)
	if err != nil || f == nil {
		return fmt.Errorf("master: the previous master passed no lock (%v)", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("master: inherited lock: %w", err)
	}
	m.lockFile = f
	go func() {
		err := upg.WaitForParent(context.Background())
		m.send(evParentExited{err: err})
	}()
	m.log.Info().Int("generation", m.gen).Msg("master started by an upgrade")
	return nil
}

// reload replaces this master with a new one (beginUpgrade). A master
// without an upgrader (Options.Upgrades off) refuses: it cannot replace
// itself, and it does not replace its workers alone either (no program
// runs a master that way; a new generation of workers under the same
// master would not pick up a new binary anyway).
func (m *master) reload(c net.Conn, id uint64, graceful bool) error {
	if m.upg == nil {
		return errors.New("this master runs without upgrades (Options.Upgrades): it cannot reload")
	}
	return m.beginUpgrade(c, id, graceful)
}

// beginUpgrade starts a new master from the binary on disk. The run loop
// goes on serving while it starts; onUpgraded gets the outcome.
func (m *master) beginUpgrade(c net.Conn, id uint64, graceful bool) error {
	switch {
	case m.state != StateRunning:
		return fmt.Errorf("master is %s", m.state)
	case m.upgrading:
		return errors.New("a reload is in progress")
	}
	m.upgrading = true
	os.Setenv(envGeneration, strconv.Itoa(m.gen+1))
	// The new master's workers take routes from here on; this master's
	// respawns, until it hands over, stay below.
	m.handedRoute = m.nextRoute + routeReserve
	os.Setenv(envRoute, strconv.FormatUint(uint64(m.handedRoute), 10))
	waitParent := !m.parentGone
	m.log.Info().Int("generation", m.gen+1).Bool("wait_for_previous", waitParent).Msg("upgrade started")
	go func() {
		var err error
		if waitParent {
			// tableflip refuses to upgrade until the previous master has
			// exited: wait for its drain, boundedly.
			ctx, cancel := context.WithTimeout(context.Background(), m.o.UpgradeTimeout+m.maxStopTimeout())
			err = m.upg.WaitForParent(ctx)
			cancel()
			if err != nil {
				err = fmt.Errorf("the previous generation is still draining: %w", err)
			}
		}
		if err == nil {
			err = m.upg.Upgrade()
		}
		m.send(evUpgraded{c: c, id: id, graceful: graceful, err: err})
	}()
	return nil
}

// inheritKey names listener i's socket among those a master hands to its
// successor: its address, made unique with the listener's index when the
// port is 0 (several listeners may ask for "127.0.0.1:0", each gets its own
// port and must get it back).
func inheritKey(i int, l Listener) string {
	if _, port, err := net.SplitHostPort(l.Addr); err == nil && port == "0" {
		return l.Addr + "#" + strconv.Itoa(i)
	}
	return l.Addr
}

// upgListen opens listener i's socket through the upgrader: inherited
// from the previous master when it had it, else new.
func (m *master) upgListen(i int, l Listener) (net.Listener, error) {
	var lerr error // unwrapped: tableflip's wrapping repeats what net says
	ln, err := m.upg.ListenWithCallback(l.Network, inheritKey(i, l), func(network, _ string) (net.Listener, error) {
		if network == "unix" {
			removeStaleSocket(l.Addr)
		}
		ln, err := net.Listen(network, l.Addr)
		lerr = err
		return ln, err
	})
	if lerr != nil {
		return nil, lerr
	}
	return ln, err
}

// upgListenPacket is upgListen for datagram sockets.
func (m *master) upgListenPacket(i int, l Listener) (net.PacketConn, error) {
	var lerr error
	pc, err := m.upg.ListenPacketWithCallback(l.Network, inheritKey(i, l), func(network, _ string) (net.PacketConn, error) {
		pc, err := net.ListenPacket(network, l.Addr)
		lerr = err
		return pc, err
	})
	if lerr != nil {
		return nil, lerr
	}
	return pc, err
}

func (m *master) maxStopTimeout() time.Duration {
	var d time.Duration
	for _, l := range m.o.Listeners {
		d = max(d, l.StopTimeout)
	}
	return d
}

// onUpgraded: on success a newer master serves; answer the CLI with its
// pid and version, then drain this master's workers and exit.
func (m *master) onUpgraded(e evUpgraded) {
	m.upgrading = false
	if e.err != nil {
		// The failed master's workers may have taken routes from
		// handedRoute on, and may still drain: skip past them.
		m.nextRoute = m.handedRoute + routeReserve
		m.log.Error().Err(e.err).Msg("upgrade failed, this generation serves on")
		if e.c != nil {
			answer(e.c, ipc.Message{Type: ipc.TypeError, ID: e.id, Error: fmt.Sprintf(
				"reload failed: %v; the previous generation (master pid %d, version %s) still serves", e.err, os.Getpid(), m.o.Version)})
			e.c.Close()
		}
		return
	}
	m.upgraded = true
	m.readyDone = false
	drained := len(m.procs)
	newPID, _ := m.o.Paths.ReadPID()
	m.log.Info().Int("new_master_pid", newPID).Int("workers", drained).Bool("unbounded", e.graceful).
		Msg("upgraded: the new master serves; draining this generation")
	m.stopWith(stopMode{graceful: true, reload: true, unbounded: e.graceful})
	if m.o.OnUpgraded != nil {
		m.o.OnUpgraded(newPID)
	}
	if e.c == nil {
		return
	}
	res := ipc.ReloadResult{PID: newPID, Generation: m.gen + 1, Drained: drained, OldPID: os.Getpid()}
	m.answering.Add(1)
	go func() {
		defer m.answering.Done()
		// The control link now leads to the new master.
		if ans, err := m.o.Paths.Request(ipc.Message{Type: ipc.TypePing}, 2*time.Second); err == nil {
			var h ipc.Hello
			if ans.Decode(&h) == nil {
				res.PID, res.Version = h.PID, h.Version
			}
		}
		msg, _ := ipc.New(ipc.TypeOK, e.id, res)
		answer(e.c, msg)
		e.c.Close()
	}()
}
