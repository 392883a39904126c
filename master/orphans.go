//go:build unix

package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"

	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/ipc"
)

// DefaultOrphanTimeout is how long the workers of a master that died serve
// on without a new master (Options.OrphanTimeout): long enough for systemd's
// Restart= (seconds) and for an operator paged by the crash to run start;
// short enough that workers nobody adopts (the service was removed, the
// run directory changed) do not serve a stale configuration for long.
const DefaultOrphanTimeout = 10 * time.Minute

// The adoption of orphans (internal/orphan), in the order of a cold start:
//
//  1. run takes the run directory's lock: of two masters started at once,
//     one adopts and the other fails with ErrRunning.
//  2. adoptOrphans asks every worker socket of the run directory for its
//     worker (a worker socket whose worker is gone is removed), and takes
//     from one orphan of each listener of its config its listening socket
//     (matched by ListenerKey and network).
//  3. openSockets serves the listeners from the adopted sockets (and
//     hands them to tableflip for the next reload); the others are opened.
//  4. The new workers start. Until every one accepts, the orphans serve
//     alone; if this master fails to start, they serve on.
//  5. onReady: releaseOrphans tells every orphan to drain, as a reload
//     drains an old generation; status shows them among the retiring
//     processes until they exit (watchOrphans).

// orphanProc is an orphan this master found. Run loop, but for the fields
// marked otherwise.
type orphanProc struct {
	c    *orphan.Client // safe for concurrent use
	info orphan.Info    // fixed
	// draining: told to drain (releaseOrphans).
	draining bool
	// finalDue: its last figures are asked for (askFinal); gone, set when
	// it has exited meanwhile: it is dropped once they have come.
	finalDue bool
	gone     *evOrphanGone
	probing  atomic.Bool // any goroutine
	mu       sync.Mutex  // guards last, seen
	last     ipc.WorkerStats
	seen     time.Time
}

type evOrphanGone struct {
	o   *orphanProc
	err error
}

// evOrphanFinal: an orphan's last figures (askFinal), or why not.
type evOrphanFinal struct {
	o   *orphanProc
	st  ipc.WorkerStats
	err error
}

// evStray: a worker socket of the run directory that is neither this
// master's workers' nor a known orphan's answered (scanStrays).
type evStray struct {
	path string
	c    *orphan.Client
	err  error
}

// workerSocket makes the worker socket of a worker about to start (route):
// its path, and a duplicate for the worker's ExtraFiles. Without orphans
// (OrphanTimeout < 0), or when it cannot be made (logged), "" and nil: that
// worker drains as soon as its master is gone.
func (m *master) workerSocket(route uint32) (string, *os.File) {
	if m.o.OrphanTimeout <= 0 {
		return "", nil
	}
	path := orphan.SocketPath(m.o.Paths.Dir, route)
	ln, err := orphan.Listen(path)
	if err != nil {
		m.log.Warn().Err(err).Msg("no worker socket: this worker will not outlive its master")
		return "", nil
	}
	f, err := m.sp.dupFile(ln, "worker-socket")
	ln.Close() // the duplicate keeps it listening; the file stays
	if err != nil {
		os.Remove(path)
		m.log.Warn().Err(err).Msg("no worker socket: this worker will not outlive its master")
		return "", nil
	}
	return path, f
}

// adoptOrphans finds the orphans of the run directory and takes the
// listening sockets of this master's listeners from them (m.adopted).
func (m *master) adoptOrphans() {
	paths := orphan.Glob(m.o.Paths.Dir)
	if len(paths) == 0 {
		return
	}
	// In parallel: a socket that does not answer (a worker that drains,
	// not an orphan) costs the dial's timeout once, not once per socket.
	type dialed struct {
		c   *orphan.Client
		err error
	}
	results := make([]dialed, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := orphan.Dial(path, 2*time.Second)
			results[i] = dialed{c, err}
		}()
	}
	wg.Wait()
	var foreign []int
	for i, path := range paths {
		c, err := results[i].c, results[i].err
		switch {
		case errors.Is(err, orphan.ErrStale):
			os.Remove(path)
		case errors.Is(err, orphan.ErrProto):
			// The peer's credentials are the dead master's (it made the
			// socket): the pid is the orphan's word, which every version
			// of the hello carries.
			pid := c.Info.PID
			m.log.Warn().Err(err).Int("orphan_pid", pid).
				Msg("an orphan of another goes version cannot hand its socket over: it is told to drain (SIGTERM)")
			if pid > 0 {
				foreign = append(foreign, pid)
			}
		case err != nil:
			m.log.Warn().Err(err).Str("socket", path).Msg("worker socket does not answer")
		default:
			m.orphans = append(m.orphans, &orphanProc{c: c, info: c.Info})
		}
	}
	if len(foreign) > 0 {
		for _, pid := range foreign {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		// Their listening sockets close as their drain starts.
		m.foreignUntil = time.Now().Add(foreignWait)
	}
	m.adopted = map[int]*os.File{}
	for i, l := range m.o.Listeners {
		key := inheritKey(i, l)
		for _, o := range m.orphans {
			if o.info.Key != key || o.info.Network != l.Network {
				continue
			}
			f, err := o.c.TakeSocket(2 * time.Second)
			if err != nil {
				m.log.Warn().Err(err).Int("orphan_pid", o.info.PID).Str("name", l.Name).Msg("orphan did not hand its socket over")
				continue
			}
			m.adopted[i] = f
			m.log.Info().Str("name", l.Name).Str("listen", l.Network+"://"+o.info.Bound).Int("orphan_pid", o.info.PID).
				Int("dead_master_pid", o.info.MasterPID).Msg("adopted the listening socket of an orphan")
			break
		}
	}
	if len(m.orphans) > 0 {
		m.log.Warn().Ints("orphan_pids", m.orphanPIDs()).Int("sockets", len(m.adopted)).
			Msg("found orphans of a master that died: they serve until this master's workers accept")
	}
}

// foreignWait bounds the wait for the sockets of orphans of another
// version to be released after their SIGTERM.
const foreignWait = 10 * time.Second

func (m *master) orphanPIDs() []int {
	pids := make([]int, 0, len(m.orphans))
	for _, o := range m.orphans {
		pids = append(pids, o.info.PID)
	}
	return pids
}

// adoptedSocket opens listener i's socket (into s) from the one adopted
// from an orphan, and hands it to tableflip for the next reload; false
// when no orphan handed one over.
func (m *master) adoptedSocket(i int, s *socket) (bool, error) {
	f := m.adopted[i]
	if f == nil {
		return false, nil
	}
	delete(m.adopted, i)
	defer f.Close()
	l, key := s.l, inheritKey(i, s.l)
	var err error
	switch l.Network {
	case "udp", "udp4", "udp6", "unixgram":
		if s.pc, err = net.FilePacketConn(f); err == nil && m.upg != nil {
			err = m.upg.tf.AddPacketConn(l.Network, key, s.pc.(tableflip.PacketConn))
		}
	default:
		if s.ln, err = net.FileListener(f); err == nil {
			if ul, ok := s.ln.(*net.UnixListener); ok {
				ul.SetUnlinkOnClose(false)
			}
			if m.upg != nil {
				err = m.upg.tf.AddListener(l.Network, key, s.ln.(tableflip.Listener))
			}
		}
	}
	if err != nil {
		return true, fmt.Errorf("adopted socket: %w", err)
	}
	return true, nil
}

// closeAdopted closes the adopted sockets no listener took.
func (m *master) closeAdopted() {
	for i, f := range m.adopted {
		f.Close()
		delete(m.adopted, i)
	}
}

// retryBusy retries open while the address is in use by orphans of another
// version that were told to drain (foreignUntil).
func (m *master) retryBusy(open func() error) error {
	for {
		err := open()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(m.foreignUntil) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// releaseOrphans tells the orphans to drain: this master's workers accept.
func (m *master) releaseOrphans() {
	if len(m.orphans) == 0 {
		return
	}
	m.orphansReleased = time.Now()
	for _, o := range m.orphans {
		m.releaseOrphan(o)
	}
	m.log.Info().Ints("orphan_pids", m.orphanPIDs()).Msg("this master's workers accept: the orphans drain")
}

// releaseOrphan tells o to drain, bounded by the stop timeout of its
// listener (the longest one when this config has not its listener).
func (m *master) releaseOrphan(o *orphanProc) {
	o.draining = true
	timeout := m.maxStopTimeout()
	for i, l := range m.o.Listeners {
		if inheritKey(i, l) == o.info.Key {
			timeout = l.StopTimeout
		}
	}
	o.finalDue = true
	go func() {
		if err := o.c.Drain(ipc.DrainRequest{Timeout: timeout, Reload: true}, 2*time.Second); err != nil {
			m.log.Warn().Err(err).Int("orphan_pid", o.info.PID).Msg("orphan not told to drain")
			m.send(evOrphanFinal{o: o, err: err})
			return
		}
		m.askFinal(o, timeout)
	}()
}

// askFinal asks o, told to drain within timeout, for its last figures
// (orphan.TypeFinal: answered as it exits) on a conversation of its own,
// so that its metrics count what it served after the watchdog's last look
// (evOrphanFinal).
func (m *master) askFinal(o *orphanProc, timeout time.Duration) {
	e := evOrphanFinal{o: o}
	c, err := orphan.Dial(o.c.Path, 2*time.Second)
	if err == nil {
		e.st, e.err = c.Final(timeout + m.o.KillTimeout + 5*time.Second)
		c.Close()
	} else {
		e.err = err
	}
	m.send(e)
}

// onOrphanFinal takes an orphan's last figures, and drops it if it has
// exited meanwhile. Without them (an orphan of an older goes, or it died)
// those of the watchdog's last look stay.
func (m *master) onOrphanFinal(e evOrphanFinal) {
	o := e.o
	o.finalDue = false
	if e.err == nil && e.st.PID == o.info.PID {
		o.mu.Lock()
		o.last, o.seen = e.st, time.Now()
		o.mu.Unlock()
	} else if e.err != nil {
		m.log.Debug().Err(e.err).Int("orphan_pid", o.info.PID).Msg("no last figures from the orphan: its metrics keep the last it gave")
	}
	if o.gone != nil {
		m.onOrphanGone(*o.gone)
	}
}

// watchOrphans asks every orphan for its figures (watchdog round); one
// that is gone is dropped (evOrphanGone).
func (m *master) watchOrphans() {
	for _, o := range m.orphans {
		if !o.probing.CompareAndSwap(false, true) {
			continue
		}
		go func() {
			defer o.probing.Store(false)
			st, err := o.c.Stats(m.o.UnresponsiveTimeout)
			if err == nil {
				o.mu.Lock()
				o.last, o.seen = st, time.Now()
				o.mu.Unlock()
				return
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				m.send(evOrphanGone{o: o, err: err})
			}
		}()
	}
}

func (m *master) onOrphanGone(e evOrphanGone) {
	for i, o := range m.orphans {
		if o != e.o {
			continue
		}
		if o.finalDue {
			o.gone = &e // shown with its last figures until they come
			return
		}
		m.orphans = append(m.orphans[:i], m.orphans[i+1:]...)
		o.c.Close()
		m.carryOrphan(o)
		// An orphan running as another user (Options.Credential) cannot
		// remove its socket from the run directory.
		os.Remove(o.c.Path)
		m.log.Info().Int("orphan_pid", o.info.PID).Int("worker", o.info.ID).Str("name", o.info.Name).
			Bool("told_to_drain", o.draining).AnErr("conversation_end", e.err).Msg("orphan exited")
		if len(m.orphans) == 0 && !m.orphansReleased.IsZero() {
			m.log.Info().Dur("drain_time_ms", time.Since(m.orphansReleased)).Msg("every orphan has exited")
		}
		return
	}
}

// carryOrphan adds the counters of o, an orphan that has exited, to
// those carried by this master's worker id of its listener name and ID,
// whose metrics showed o's figures while it drained (slotLoad): they do
// not go back. Its last figures are its final ones (askFinal), or those
// of the watchdog's last look. An orphan of a listener this master has
// not has no series to keep them.
func (m *master) carryOrphan(o *orphanProc) {
	o.mu.Lock()
	last, seen := o.last.Load, !o.seen.IsZero()
	o.mu.Unlock()
	if !seen {
		return
	}
	for _, s := range m.slots {
		if s.id == o.info.ID && m.o.Listeners[s.listener].Name == o.info.Name {
			addCounters(&s.carried, last)
			return
		}
	}
}

// strayRetry is how soon scanStrays asks a worker socket again that did
// not answer as an orphan.
const strayRetry = 5 * time.Second

// scanStrays looks for orphans that appeared after the start (watchdog
// round): the workers of a new master that a reload started and that died
// (killed at the upgrade timeout, or crashed), or of a master killed while
// it adopted. A serving master tells them to drain. Not while a reload is
// in flight, nor while a previous generation drains: their workers'
// sockets belong to a live master.
func (m *master) scanStrays() {
	if m.state != StateRunning || !m.parentGone || m.upgrading || m.upgraded || m.o.Paths.Dir == "" {
		return
	}
	known := map[string]bool{}
	for p := range m.procs {
		known[p.orphanAt] = true
	}
	for _, o := range m.orphans {
		known[o.c.Path] = true
	}
	now := time.Now()
	for _, path := range orphan.Glob(m.o.Paths.Dir) {
		if known[path] || now.Before(m.strayTried[path]) {
			continue
		}
		if m.strayTried == nil {
			m.strayTried = map[string]time.Time{}
		}
		m.strayTried[path] = now.Add(strayRetry)
		go func() {
			c, err := orphan.Dial(path, 2*time.Second)
			m.send(evStray{path: path, c: c, err: err})
		}()
	}
}

func (m *master) onStray(e evStray) {
	switch {
	case errors.Is(e.err, orphan.ErrStale):
		os.Remove(e.path)
		delete(m.strayTried, e.path)
	case errors.Is(e.err, orphan.ErrProto):
		if pid := e.c.Info.PID; pid > 0 {
			m.log.Warn().Err(e.err).Int("orphan_pid", pid).Msg("an orphan of another goes version: told to drain (SIGTERM)")
			syscall.Kill(pid, syscall.SIGTERM)
		}
	case e.err != nil:
		// Not an orphan (yet): asked again later.
	case m.state != StateRunning:
		e.c.Close()
	default:
		delete(m.strayTried, e.path)
		o := &orphanProc{c: e.c, info: e.c.Info}
		m.orphans = append(m.orphans, o)
		m.log.Warn().Int("orphan_pid", o.info.PID).Int("dead_master_pid", o.info.MasterPID).Str("name", o.info.Name).
			Msg("found an orphan of a master that died: it drains")
		m.releaseOrphan(o)
	}
}

// closeOrphans ends the conversations (the master exits): orphans not
// told to drain serve on.
func (m *master) closeOrphans() {
	for _, o := range m.orphans {
		o.c.Close()
	}
	m.orphans = nil
	m.closeAdopted()
}

// orphanEntries shows the orphans in status, among the retiring
// processes (run loop).
func (m *master) orphanEntries() []ipc.Worker {
	out := make([]ipc.Worker, 0, len(m.orphans))
	now := time.Now()
	for _, o := range m.orphans {
		in := o.info
		w := ipc.Worker{
			MasterPID: in.MasterPID, AdoptedBy: os.Getpid(), ID: in.ID, Name: in.Name, Listen: in.Network + "://" + in.Bound,
			Generation: in.Generation, PID: in.PID, Route: in.Route, State: in.State,
		}
		o.mu.Lock()
		if !o.seen.IsZero() {
			w.Load, w.State = o.last.Load, o.last.State
			w.LastSeen, w.SilentSeconds = o.seen, now.Sub(o.seen).Seconds()
		}
		o.mu.Unlock()
		out = append(out, w)
	}
	return out
}
