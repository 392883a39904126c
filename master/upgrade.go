//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cloudflare/tableflip"
	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

const (
	// lockFileName names the run directory's lock among the files a
	// master hands to its successor: the successor holds the same lock.
	lockFileName = "goes-lock"
	// routeReserve is how many routes an upgrading master keeps for its
	// own respawns while the new master starts: the new one starts that
	// far ahead.
	routeReserve = 1 << 16
)

// Upgrader lets a master replace itself with a new process on reload
// (cloudflare/tableflip), and tells a master whether a reload started it
// (HasParent). A process has at most one, ever (tableflip's rule): create
// it before Run, ask it, pass it in Options.Upgrader. Its methods are safe
// for concurrent use; a nil *Upgrader has no parent and Stop does nothing.
type Upgrader struct {
	tf        *tableflip.Upgrader
	timeout   time.Duration        // UpgradeTimeout: a new master's start
	inherited procenv.SuccessorEnv // from the previous master; zero without one
}

// NewUpgrader creates this process's Upgrader. Of o it reads only the
// new master's start bound, UpgradeTimeout (and ReadyTimeout, of which the
// default follows). In a master started by a reload it takes over the
// previous master's sockets and reads what that master handed on: an
// error when that is malformed.
func NewUpgrader(o Options) (*Upgrader, error) {
	o.timeouts()
	tf, err := tableflip.New(tableflip.Options{UpgradeTimeout: o.UpgradeTimeout})
	if err != nil {
		return nil, fmt.Errorf("master: upgrader: %w", err)
	}
	u := &Upgrader{tf: tf, timeout: o.UpgradeTimeout}
	if tf.HasParent() {
		if u.inherited, err = procenv.DecodeSuccessorEnv(os.Getenv); err != nil {
			tf.Stop()
			return nil, fmt.Errorf("master: upgrader: from the previous master: %w", err)
		}
	}
	return u, nil
}

// HasParent reports whether a reload started this process: its
// predecessor still runs and holds the run directory until this master
// serves.
func (u *Upgrader) HasParent() bool { return u != nil && u.tf.HasParent() }

// Inherited is what the previous master handed on (zero without one).
func (u *Upgrader) Inherited() procenv.SuccessorEnv {
	if u == nil {
		return procenv.SuccessorEnv{}
	}
	return u.inherited
}

// Stop ends upgrades for this process; Run calls it when it returns. It
// may be called more than once.
func (u *Upgrader) Stop() {
	if u != nil {
		u.tf.Stop()
	}
}

// upgrade hands next on and starts the new master: tableflip starts it
// with this process's environment, hence Apply right before.
func (u *Upgrader) upgrade(next procenv.SuccessorEnv) error {
	if err := next.Apply(); err != nil {
		return fmt.Errorf("master: hand-off to the new master: %w", err)
	}
	return u.tf.Upgrade()
}

// adoptUpgrader makes m use its Options.Upgrader: the sockets come from
// the previous master when there is one, and so do the run directory's
// lock, the generation and the next route.
func (m *master) adoptUpgrader() error {
	u := m.o.Upgrader
	m.upg = u
	if !u.HasParent() {
		return nil
	}
	m.parentGone = false
	if g := u.inherited.Generation; g > 0 {
		m.gen = g
	}
	if r := u.inherited.NextRoute; r != 0 {
		m.nextRoute = r
	}
	rc := u.inherited.Reloads
	m.ops.Reloads = map[string]int{ipc.ReloadOK: rc.OK, ipc.ReloadFailed: rc.Failed, ipc.ReloadRefused: rc.Refused}
	f, err := u.tf.File(lockFileName)
	if err != nil || f == nil {
		return fmt.Errorf("master: the previous master passed no lock (%v)", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("master: inherited lock: %w", err)
	}
	m.lockFile = f
	go func() {
		err := u.tf.WaitForParent(context.Background())
		m.send(evParentExited{err: err})
	}()
	m.log.Info().Int("generation", m.gen).Msg("master started by an upgrade")
	return nil
}

// reload replaces this master with a new one (beginUpgrade). A master
// without an upgrader (Options.Upgrader nil) refuses: it cannot replace
// itself, and it does not replace its workers alone either (no program
// runs a master that way; a new generation of workers under the same
// master would not pick up a new binary anyway).
func (m *master) reload(c net.Conn, id uint64, req ipc.ReloadRequest) error {
	var err error
	switch {
	case m.upg == nil:
		err = errors.New("this master runs without an upgrader (Options.Upgrader): it cannot reload")
	case m.state != StateRunning:
		err = fmt.Errorf("master is %s", m.state)
	case m.upgrading:
		err = errors.New("a reload is in progress")
	case req.Refused != "":
		// The CLI refused it (goes-master check --reload, or reload
		// --config with a config that does not check): it is logged and
		// counted here, where operators look.
		err = fmt.Errorf("the config %s does not check: %s", req.Config, req.Refused)
	case req.Config != "" && !filepath.IsAbs(req.Config):
		err = fmt.Errorf("config file %q is not an absolute path", req.Config)
	}
	if err != nil {
		m.ops.Reloads[ipc.ReloadRefused]++
		m.log.Error().Err(err).Int("refused", m.ops.Reloads[ipc.ReloadRefused]).Msg("reload refused")
		return err
	}
	m.beginUpgrade(c, id, req)
	return nil
}

// beginUpgrade starts a new master from the binary on disk. The run loop
// goes on serving while it starts; onUpgraded gets the outcome.
func (m *master) beginUpgrade(c net.Conn, id uint64, req ipc.ReloadRequest) {
	graceful := req.Graceful
	m.upgrading = true
	m.upgradeReport = ""
	// The new master's workers take routes from here on; this master's
	// respawns, until it hands over, stay below. (0 would hand nothing;
	// takeRoute skips it anyway.)
	m.handedRoute = m.nextRoute + routeReserve
	if m.handedRoute == 0 {
		m.handedRoute = 1
	}
	config := req.Config
	if config == "" {
		config = m.o.ConfigFile
	}
	next := procenv.SuccessorEnv{
		Generation: m.gen + 1, NextRoute: m.handedRoute, ClusterRoute: m.o.ClusterRoute,
		ParentControl: m.ctlPath, ConfigFile: config, RunDir: m.o.Paths.Dir,
		Reloads: procenv.ReloadCounts{
			OK: m.ops.Reloads[ipc.ReloadOK], Failed: m.ops.Reloads[ipc.ReloadFailed], Refused: m.ops.Reloads[ipc.ReloadRefused],
		},
	}
	waitParent := !m.parentGone
	tickets := m.tickets
	m.log.Info().Int("generation", m.gen+1).Bool("wait_for_previous", waitParent).Str("config", config).Msg("upgrade started")
	go func() {
		var err error
		if waitParent {
			// tableflip refuses to upgrade until the previous master has
			// exited: wait for its drain, boundedly.
			ctx, cancel := context.WithTimeout(context.Background(), m.upg.timeout+m.maxStopTimeout())
			err = m.upg.tf.WaitForParent(ctx)
			cancel()
			if err != nil {
				err = fmt.Errorf("the previous generation is still draining: %w", err)
			}
		}
		if err == nil {
			err = m.passTicketKeys(tickets)
		}
		if err == nil {
			err = m.upg.upgrade(next)
		}
		// tableflip's own loop learns of the parent's exit on another
		// channel than WaitForParent: an upgrade right after it may still
		// be refused (TestReloadDrainTimeout failed so once in a gate).
		for try := 0; waitParent && err != nil && strings.Contains(err.Error(), "parent hasn't exited") && try < 100; try++ {
			time.Sleep(10 * time.Millisecond)
			err = m.upg.upgrade(next)
		}
		m.send(evUpgraded{c: c, id: id, graceful: graceful, err: err})
	}()
}

// inheritKey names listener i's socket among those a master hands to its
// successor: its address, made unique with the listener's index when the
// port is 0 (several listeners may ask for "127.0.0.1:0", each gets its own
// port and must get it back).
func inheritKey(i int, l Listener) string { return ListenerKey(i, l.Addr) }

// ListenerKey is the key by which the socket of listener i (of address
// addr) is matched across a reload (tableflip) and an adoption of orphans
// (internal/orphan): its address, with the index when the port is 0.
func ListenerKey(i int, addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		return addr + "#" + strconv.Itoa(i)
	}
	return addr
}

// upgListen opens listener i's socket through the upgrader: inherited
// from the previous master when it had it, else new.
func (m *master) upgListen(i int, l Listener) (net.Listener, error) {
	var lerr error // unwrapped: tableflip's wrapping repeats what net says
	ln, err := m.upg.tf.ListenWithCallback(l.Network, inheritKey(i, l), func(network, _ string) (net.Listener, error) {
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
	pc, err := m.upg.tf.ListenPacketWithCallback(l.Network, inheritKey(i, l), func(network, _ string) (net.PacketConn, error) {
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
		why := e.err.Error()
		if m.upgradeReport != "" {
			// What the new master said, then how it ended (tableflip).
			why = fmt.Sprintf("%s (%v)", m.upgradeReport, e.err)
		}
		m.upgradeReport = ""
		m.ops.Reloads[ipc.ReloadFailed]++
		m.ops.LastReloadError = why
		m.log.Error().Str("error", why).Msg("upgrade failed, this generation serves on")
		if e.c != nil {
			answer(e.c, ipc.Message{Type: ipc.TypeError, ID: e.id, Error: fmt.Sprintf(
				"reload failed: %s; the previous generation (master pid %d, version %s) still serves", why, os.Getpid(), m.o.Version)})
			e.c.Close()
		}
		return
	}
	m.upgraded = true
	m.readyDone = false
	m.handAdminOver()
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

// onUpgradeFailure records what the new master of the reload in progress
// says before it exits: onUpgraded puts it in the reload's answer.
func (m *master) onUpgradeFailure(f ipc.UpgradeFailure) {
	if !m.upgrading {
		return
	}
	m.upgradeReport = fmt.Sprintf("new master (pid %d): %s", f.PID, f.Error)
}

// ReportUpgradeFailure tells the master that started this process through
// a reload (its control socket at path: procenv.SuccessorEnv.ParentControl)
// why this new master fails before it serves; that master puts it in its
// answer to reload. It waits for the acknowledgement (bounded by 2 s), so
// that the report is in before this process exits.
func ReportUpgradeFailure(path string, cause error) error {
	msg, err := ipc.New(ipc.TypeUpgradeFailed, 1, ipc.UpgradeFailure{PID: os.Getpid(), Error: cause.Error()})
	if err != nil {
		return err
	}
	p := Paths{Dir: filepath.Dir(path), Socket: path}
	_, err = p.Request(msg, 2*time.Second)
	return err
}
