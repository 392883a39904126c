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
	p.mu.Lock()
	p.lastSeen = p.readyAt
	p.mu.Unlock()
	p.state = StateRunning
	s := p.slot
	m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Int("generation", p.gen).Dur("start_time_ms", time.Since(p.started)).Msg("worker ready")
	if p == s.next {
		m.promote(p)
	}
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
		if m.upg.HasParent() {
			m.ops.Reloads[ipc.ReloadOK]++ // this master is the reload's success
		}
		if err := sdNotify(fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid())); err != nil {
			m.log.Warn().Err(err).Msg("systemd notify failed")
		}
		m.log.Info().Int("workers", len(m.slots)).Dur("start_time_ms", time.Since(m.started)).Msg("master ready")
		m.releaseOrphans()
		if m.o.OnReady != nil {
			m.o.OnReady()
		}
	}
}

func (m *master) onExit(p *proc, status string) {
	delete(m.procs, p)
	// Its control channel ends with the process: the read goroutine
	// takes in its final figures (TypeFinal) before it sees EOF, which
	// comes at once (bounded, for a descendant holding the socket).
	select {
	case <-p.gone:
	case <-time.After(100 * time.Millisecond):
	}
	p.conn.Close()
	if last, ok, at := p.lastAnswer(); ok {
		addCounters(&p.slot.carried, last.Load)
		if !p.final.Load() {
			m.log.Info().Int("worker", p.slot.id).Int("worker_pid", p.pid).Time("last_seen", at).
				Msg("worker exited without its final figures: its metrics keep those of its last answer")
		}
	}
	if p.orphanAt != "" {
		os.Remove(p.orphanAt)
	}
	if p.shareSlot >= 0 && p.slot.listener < len(m.sockets) {
		m.sockets[p.slot.listener].releaseShareSlot(p.shareSlot)
	}
	if p.killTimer != nil {
		p.killTimer.Stop()
	}
	s := p.slot
	uptime := time.Since(p.started)
	if p.retiring {
		// Drained after a recycle: its id is served by its replacement.
		m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Msg("recycled worker exited")
		return
	}
	replacement := p == s.next
	if replacement {
		s.next = nil
	} else {
		s.cur = nil
	}
	if m.state == StateStopping {
		m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Msg("worker exited")
		if s.cur == nil && s.next == nil {
			s.state = StateStopping
		}
		return
	}
	s.exitCount++
	m.exitCount++
	s.lastExit = status
	m.figs.exited(status)
	switch {
	case replacement && s.cur != nil:
		// The process it was to replace serves on; it asks again later.
		m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Str("reason", p.recycle).
			Msg("recycle failed: the replacement exited before it served")
		return
	case !replacement && s.next != nil:
		// Its replacement, on its way, takes the id over.
		m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Dur("uptime_ms", uptime).
			Msg("worker exited while its replacement starts")
		s.state = StateStarting
		return
	}
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
	m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Dur("uptime_ms", uptime).
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

// onRecycle starts a replacement for p, which asked for one (it passed a
// recycling limit). p serves on until the replacement accepts (promote).
func (m *master) onRecycle(p *proc, req ipc.RecycleRequest) {
	s := p.slot
	if _, live := m.procs[p]; !live || m.state != StateRunning || p != s.cur || !p.ready ||
		p.state != StateRunning || p.unresponsive || s.next != nil {
		return // it asks again if it still should
	}
	if req.Reason == ipc.RecycleMaxMemory && time.Since(p.readyAt) < m.o.QuickDeath {
		// A worker over its memory limit as soon as it starts (max_memory
		// below what a fresh worker holds) would be replaced in a loop.
		m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Str("reason", req.Reason).Uint64("limit", req.Limit).
			Msg("recycle refused: the worker has just started")
		return
	}
	np, err := m.spawnProc(s)
	if err != nil {
		m.log.Error().Err(err).Int("worker", s.id).Msg("recycle failed: cannot start a replacement")
		return
	}
	np.recycle = req.Reason
	s.next = np
	np.killTimer = time.AfterFunc(m.o.ReadyTimeout, func() { m.send(evKillProc{np, "replacement not ready in time"}) })
	m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Int("new_worker_pid", np.pid).Str("reason", req.Reason).
		Uint64("requests", req.Requests).Uint64("memory_bytes", req.MemoryBytes).Uint64("limit", req.Limit).
		Msg("recycling worker")
}

// promote makes a ready replacement the slot's process and drains the
// one it replaces, bounded by the listener's stop timeout.
func (m *master) promote(np *proc) {
	s := np.slot
	if np.killTimer != nil {
		np.killTimer.Stop()
		np.killTimer = nil
	}
	old := s.cur
	s.cur, s.next = np, nil
	s.ops.Recycles++
	s.ops.LastRecycle = np.recycle
	m.ops.Recycles[np.recycle]++
	if old == nil {
		return
	}
	old.retiring = true
	m.log.Info().Int("worker", s.id).Int("worker_pid", old.pid).Int("new_worker_pid", np.pid).Str("reason", np.recycle).
		Msg("worker recycled: the replacement serves, the old process drains")
	if m.state == StateStopping {
		return // stopWith has told it already
	}
	timeout := m.o.Listeners[s.listener].StopTimeout
	m.drainProc(old, false, timeout)
	old.killTimer = time.AfterFunc(timeout+m.o.KillTimeout, func() { m.send(evKillProc{old, "recycled worker did not drain in time"}) })
}

// watch is the watchdog's round (every WatchdogInterval): it asks every
// ready worker for its figures, one request in flight per worker, and
// judges them by how long they have been silent.
func (m *master) watch() {
	now := time.Now()
	if !m.parentGone && m.upg != nil && m.adm != nil && m.prev.asking.CompareAndSwap(false, true) {
		// The previous generation's totals, for the metrics.
		path := m.upg.inherited.ParentControl
		go func() {
			defer m.prev.asking.Store(false)
			m.previousTotals(path)
		}()
	}
	for p := range m.procs {
		if !p.ready {
			continue
		}
		if p.probing.CompareAndSwap(false, true) {
			go func() {
				defer p.probing.Store(false)
				p.askStats(m.o.UnresponsiveTimeout)
			}()
		}
		_, _, seen := p.lastAnswer()
		silent := now.Sub(seen)
		s := p.slot
		switch {
		case !p.unresponsive && silent >= m.o.UnresponsiveTimeout:
			p.unresponsive = true
			if !p.retiring {
				s.ops.Unresponsive++
			}
			m.ops.UnresponsiveTotal++
			ev := m.log.Error()
			if m.o.KillUnresponsive > 0 {
				ev = m.log.Warn().Dur("kill_after_ms", m.o.KillUnresponsive)
			}
			ev.Int("worker", s.id).Int("worker_pid", p.pid).Dur("silent_ms", silent).Msg("worker unresponsive")
		case p.unresponsive && silent < m.o.UnresponsiveTimeout:
			p.unresponsive = false
			m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Msg("worker responsive again")
		}
		// Also in a stop: a hung worker cannot drain, and the drain of
		// reload -g has no other bound. (Nothing respawns it then.)
		if p.unresponsive && !p.killed && m.o.KillUnresponsive > 0 && silent >= m.o.KillUnresponsive {
			p.killed = true
			if !p.retiring {
				s.ops.WatchdogKills++
			}
			m.ops.WatchdogKills++
			m.log.Warn().Int("worker", s.id).Int("worker_pid", p.pid).Dur("silent_ms", silent).Msg("worker unresponsive too long, killing it")
			p.process.Kill()
		}
	}
}

// waitOutput waits a little for the copies of the workers' output to
// finish (their pipes reach EOF once the workers have exited), so that
// their last lines reach the log before the master exits.
func (m *master) waitOutput() {
	done := make(chan struct{})
	go func() {
		m.copying.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		m.log.Warn().Msg("worker output still open after the workers exited (a process they started holds it?)")
	}
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
