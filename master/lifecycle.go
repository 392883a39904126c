//go:build unix

package master

import (
	"fmt"
	"os"
	"time"

	"github.com/goes-project/goes/ipc"
)

func (m *master) onReady(p *proc) {
	if _, live := m.procs[p]; !live {
		return
	}
	p.ready = true
	p.readyAt = time.Now()
	p.state = StateRunning
	s := p.slot
	m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Int("generation", p.gen).Dur("start_time", time.Since(p.started)).Msg("worker ready")
	if m.state == StateStopping {
		m.stopProc(p)
		return
	}
	s.state = StateRunning
	if m.state == StateStarting {
		for _, s := range m.slots {
			if s.cur == nil || !s.cur.ready {
				return
			}
		}
		m.state = StateRunning
		err := m.o.Paths.writePID(os.Getpid())
		if err == nil {
			err = m.linkControl()
		}
		if err == nil && m.upg != nil {
			// Tells the previous master, if any, that we serve.
			err = m.upg.tf.Ready()
		}
		if err != nil {
			m.startErr = err
			m.beginStop(false)
			return
		}
		m.readyDone = true
		m.adminReady()
		if err := sdNotify(fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid())); err != nil {
			m.log.Warn().Err(err).Msg("systemd notify failed")
		}
		m.log.Info().Int("workers", len(m.slots)).Dur("start_time", time.Since(m.started)).Msg("master ready")
		if m.o.OnReady != nil {
			m.o.OnReady()
		}
	}
}

func (m *master) onExit(p *proc, ps *os.ProcessState) {
	delete(m.procs, p)
	p.conn.Close()
	s := p.slot
	status := "unknown"
	if ps != nil {
		status = ps.String()
	}
	uptime := time.Since(p.started)
	// A slot runs one process at a time: p is s.cur.
	s.cur = nil
	if m.state == StateStopping {
		m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Msg("worker exited")
		s.state = StateStopping
		return
	}
	s.exitCount++
	m.exitCount++
	s.lastExit = status
	m.figs.exited(status)
	if m.state == StateStarting {
		m.startErr = fmt.Errorf("master: worker %d (pid %d) exited during start: %s", s.id, p.pid, status)
		m.beginStop(false)
		return
	}
	if !p.ready || time.Since(p.readyAt) < m.o.QuickDeath {
		s.quickFails++
	} else {
		s.quickFails = 0
	}
	if s.quickFails >= m.o.CrashLoopLimit {
		s.state = StateFailed
		m.log.Error().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Int("exit_count", s.exitCount).
			Msg("worker keeps crashing, giving up on it")
		return
	}
	m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Dur("uptime", uptime).
		Int("exit_count", s.exitCount).Msg("worker exited, restarting")
	m.figs.restarts++
	m.scheduleRespawn(s)
}

func (m *master) scheduleRespawn(s *slot) {
	// One quick death restarts at once; more in a row back off 100 ms,
	// 200 ms, ... up to 10 s.
	delay := time.Duration(0)
	if s.quickFails > 1 {
		delay = min(100*time.Millisecond<<(s.quickFails-2), 10*time.Second)
	}
	if delay == 0 {
		err := m.spawn(s)
		if err == nil {
			return
		}
		m.log.Error().Err(err).Int("worker", s.id).Msg("worker respawn failed")
		delay = time.Second
	}
	s.state = StateBackoff
	s.timer = time.AfterFunc(delay, func() { m.send(evRespawn{s}) })
}

func (m *master) drainProc(p *proc, reload bool, timeout time.Duration) {
	p.state = StateDraining
	p.tell(ipc.TypeDrain, ipc.DrainRequest{Timeout: timeout, Reload: reload})
}

func (m *master) stopTimeout(p *proc) time.Duration {
	if m.stop.unbounded {
		return 0
	}
	return m.o.Listeners[p.slot.listener].StopTimeout
}

func (m *master) stopProc(p *proc) {
	if m.stop.graceful {
		m.drainProc(p, m.stop.reload, m.stopTimeout(p))
		return
	}
	p.state = StateStopping
	p.tell(ipc.TypeStop, nil)
}

// beginStop stops every worker: fast (stop, then kill after KillTimeout)
// or graceful (drain bounded by the stop timeouts). A fast stop overrides
// a graceful one in progress.
func (m *master) beginStop(graceful bool) { m.stopWith(stopMode{graceful: graceful}) }

func (m *master) stopWith(mode stopMode) {
	if m.state == StateStopping && (!m.stop.graceful || mode.graceful) {
		return
	}
	m.state = StateStopping
	m.stop = mode
	if !m.upgraded {
		sdNotify("STOPPING=1")
	}
	for _, s := range m.slots {
		if s.timer != nil {
			s.timer.Stop()
			s.timer = nil
		}
	}
	// Nobody will accept from the sockets again through this master: close
	// its copies so that, once the workers have closed theirs, new clients
	// are refused instead of queued (after an upgrade the new generation's
	// copies keep the queue). The control socket stays for status.
	m.closeSockets(!m.upgraded)
	wait := m.o.KillTimeout
	if mode.graceful {
		for _, l := range m.o.Listeners {
			wait = max(wait, l.StopTimeout+m.o.KillTimeout)
		}
	}
	m.log.Info().Bool("graceful", mode.graceful).Bool("reload", mode.reload).Bool("unbounded", mode.unbounded).
		Int("workers", len(m.procs)).Msg("master stopping")
	for p := range m.procs {
		m.stopProc(p)
	}
	if m.killTimer != nil {
		m.killTimer.Stop()
	}
	if !mode.unbounded {
		m.killTimer = time.AfterFunc(wait, func() { m.send(evKill{}) })
	}
}
