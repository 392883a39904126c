//go:build unix

package master

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/goes-project/goes/ipc"
)

type reloadOp struct {
	c        net.Conn
	id       uint64
	graceful bool
	pending  int
	drained  int
	err      error
}

// beginReload starts a new generation of workers next to the current one;
// each old worker drains once its successor accepts.
// reload replaces the master (Upgrades) or the workers.
func (m *master) reload(c net.Conn, id uint64, graceful bool) error {
	if m.upg != nil {
		return m.beginUpgrade(c, id, graceful)
	}
	return m.beginReload(c, id, graceful)
}

func (m *master) beginReload(c net.Conn, id uint64, graceful bool) error {
	switch {
	case m.state != StateRunning:
		return fmt.Errorf("master is %s", m.state)
	case m.reloading != nil:
		return errors.New("a reload is in progress")
	}
	for p := range m.procs {
		if p.state == StateDraining {
			return fmt.Errorf("worker %d (pid %d) of the previous generation is still draining", p.slot.id, p.pid)
		}
	}
	m.gen++
	r := &reloadOp{c: c, id: id, graceful: graceful}
	m.reloading = r
	m.log.Info().Int("generation", m.gen).Msg("reload started")
	for _, s := range m.slots {
		if s.state == StateFailed {
			s.quickFails = 0
		}
		if err := m.spawn(s, r); err != nil {
			r.err = err
			continue
		}
		r.pending++
	}
	if r.pending == 0 {
		m.finishReload()
	}
	return nil
}

func (m *master) finishReload() {
	r := m.reloading
	m.reloading = nil
	if r.err != nil {
		// Give up on the new workers still starting; the old ones serve on.
		for _, s := range m.slots {
			if s.next != nil {
				s.next.cmd.Process.Kill()
			}
		}
		m.log.Error().Err(r.err).Int("generation", m.gen).Msg("reload failed")
	} else {
		m.log.Info().Int("generation", m.gen).Int("drained", r.drained).Msg("reload done")
	}
	if r.c == nil {
		return
	}
	if r.err != nil {
		answer(r.c, ipc.Message{Type: ipc.TypeError, ID: r.id, Error: "reload failed: " + r.err.Error() + " (the previous generation still serves)"})
	} else {
		msg, _ := ipc.New(ipc.TypeOK, r.id, ipc.ReloadResult{PID: os.Getpid(), Version: m.o.Version, Generation: m.gen, Drained: r.drained})
		answer(r.c, msg)
	}
	r.c.Close()
}
