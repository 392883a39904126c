//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goes-project/goes/ipc"
)

// listenControl opens this master's control socket (owner-only) at
// goes-PID.sock; Paths.Socket is a symbolic link to the socket of the
// master that serves, switched atomically when a new master takes over.
func (m *master) listenControl() error {
	if m.parentGone {
		// This master holds the lock alone: sockets left there are stale.
		m.removeStaleControl()
	}
	m.ctlPath = filepath.Join(m.o.Paths.Dir, fmt.Sprintf("goes-%d.sock", os.Getpid()))
	os.Remove(m.ctlPath)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: m.ctlPath, Net: "unix"})
	if err != nil {
		return fmt.Errorf("master: control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(m.ctlPath, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("master: control socket: %w", err)
	}
	m.ctlLn = ln
	m.reserve = newFDReserve(controlReserve)
	go m.acceptControl(ln)
	if m.parentGone {
		return m.linkControl()
	}
	return nil
}

// linkControl points Paths.Socket at this master's socket.
func (m *master) linkControl() error {
	tmp := m.o.Paths.Socket + ".new"
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(m.ctlPath), tmp); err != nil {
		return fmt.Errorf("master: control link: %w", err)
	}
	if err := os.Rename(tmp, m.o.Paths.Socket); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("master: control link: %w", err)
	}
	return nil
}

// otherControls lists the control sockets of the other masters of the run
// directory (a previous generation still draining, or stale ones).
func (m *master) otherControls() []string {
	list, _ := filepath.Glob(filepath.Join(m.o.Paths.Dir, "goes-*.sock"))
	out := list[:0]
	for _, p := range list {
		if p != m.ctlPath {
			out = append(out, p)
		}
	}
	return out
}

func (m *master) removeStaleControl() {
	for _, p := range m.otherControls() {
		removeStaleSocket(p)
	}
	if _, err := os.Stat(m.o.Paths.Socket); err != nil {
		os.Remove(m.o.Paths.Socket) // a dangling link
	}
}

// acceptControl serves the control socket until ln is closed. It
// survives a shortage of descriptors: it gives up one of the reserve
// (fdReserve) to take the connection waiting, and otherwise backs off
// (acceptBackoff).
func (m *master) acceptControl(ln *net.UnixListener) {
	bo := acceptBackoff{log: m.log, what: "control socket"}
	short, released := false, false // out of descriptors; one of the reserve given up for this accept
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			released = false
			switch {
			case errors.Is(err, net.ErrClosed):
				return
			case outOfFiles(err) && m.reserve.release():
				released = true
				if !short {
					short = true
					m.log.Warn().Err(err).Msg("out of descriptors: the control socket takes from its reserve")
				}
			default:
				bo.failed(err)
			}
			continue
		}
		if short && !released {
			short = false
			m.log.Info().Msg("the control socket accepts without its reserve again")
		}
		released = false
		bo.accepted()
		go m.serveControl(c)
	}
}

// serveControl reads a control client's request (within
// controlReadTimeout) and hands it to the run loop. A client of another
// user is refused first; then one over controlMaxConns.
func (m *master) serveControl(uc *net.UnixConn) {
	if err := checkPeer(uc); err != nil {
		m.log.Warn().Err(err).Msg("control client refused")
		uc.Close()
		m.reserve.refill()
		return
	}
	c := &ctlConn{UnixConn: uc, m: m}
	if n := m.ctlOpen.Add(1); n > controlMaxConns {
		answer(c, ipc.Message{Type: ipc.TypeError, Error: fmt.Sprintf("master busy: %d control connections open (at most %d)", n-1, controlMaxConns)})
		c.Close()
		return
	}
	c.SetReadDeadline(time.Now().Add(controlReadTimeout))
	msg, err := ipc.NewConn(c).Recv()
	if err != nil {
		answer(c, ipc.Message{Type: ipc.TypeError, Error: err.Error()})
		c.Close()
		return
	}
	if clientGone(uc) {
		// Its CLI gave up waiting (a master stopped by SIGSTOP, say):
		// what it asked is not done behind its back when the master
		// resumes.
		m.log.Warn().Str("request", msg.Type).Msg("control request dropped: its client gave up before the master read it")
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	select {
	case m.events <- evRequest{m: msg, c: c}:
	case <-m.done:
		c.Close()
	}
}

// clientGone reports whether the client of c has closed its side (it
// sends one request, then reads): a peek that does not wait finds the
// end of the stream.
func clientGone(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var (
		n    int
		perr error
		b    [1]byte
	)
	if err := rc.Control(func(fd uintptr) {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	return n == 0 && perr == nil
}

// ctlConn is a control connection: its Close gives its place back
// (controlMaxConns) and refills the descriptor reserve.
type ctlConn struct {
	*net.UnixConn
	m    *master
	once sync.Once
}

func (c *ctlConn) Close() error {
	err := c.UnixConn.Close()
	c.once.Do(func() {
		c.m.ctlOpen.Add(-1)
		c.m.reserve.refill()
	})
	return err
}

// closeControlListener stops taking CLI requests and removes the socket,
// and the link to it unless a newer master owns the link now.
func (m *master) closeControlListener() {
	if m.ctlLn == nil {
		return
	}
	m.ctlLn.Close()
	m.ctlLn = nil
	m.reserve.close()
	if target, err := os.Readlink(m.o.Paths.Socket); err == nil && target == filepath.Base(m.ctlPath) {
		os.Remove(m.o.Paths.Socket)
	}
	os.Remove(m.ctlPath)
}

// closeControl is the last word: clients waiting for the stop see EOF.
func (m *master) closeControl() {
	m.closeControlListener()
	for _, c := range m.waiters {
		c.Close()
	}
	m.waiters = nil
}

func (m *master) onRequest(msg ipc.Message, c net.Conn) {
	fail := func(err error) {
		answer(c, ipc.Message{Type: ipc.TypeError, ID: msg.ID, Error: err.Error()})
		c.Close()
	}
	ok := func(body any) {
		ans, err := ipc.New(ipc.TypeOK, msg.ID, body)
		if err != nil {
			fail(err)
			return
		}
		answer(c, ans)
	}
	switch msg.Type {
	case ipc.TypePing:
		ok(ipc.Hello{PID: os.Getpid(), Version: m.o.Version, Progress: true, RefusedReloads: true})
		c.Close()
	case ipc.TypeStatus:
		var req ipc.StatusRequest
		if len(msg.Body) > 0 {
			msg.Decode(&req)
		}
		snap := m.snapshot()
		var others []string
		if !req.Local {
			others = m.otherControls()
		}
		parent := ""
		if req.Totals && !m.parentGone && m.upg != nil {
			parent = m.upg.inherited.ParentControl
		}
		m.answering.Add(1)
		go func() {
			defer m.answering.Done()
			st := m.gatherStatus(snap, others)
			if req.Totals {
				var (
					pm  ipc.MasterStatus
					err error
				)
				if st.Previous, st.PreviousDraining, pm, err = m.previousTotals(parent); err != nil {
					fail(err)
					return
				}
				addMasterCounters(&st.Master, pm)
			}
			ok(st)
			c.Close()
		}()
	case ipc.TypeConnections:
		snap := m.snapshot()
		m.answering.Add(1)
		go func() {
			defer m.answering.Done()
			ok(gatherConns(snap.entries))
			c.Close()
		}()
	case ipc.TypeStop:
		var req ipc.StopRequest
		if len(msg.Body) > 0 {
			if err := msg.Decode(&req); err != nil {
				fail(err)
				return
			}
		}
		if req.Progress {
			c = m.watchProgress(c, msg.ID, ipc.TypeStop)
		}
		ok(ipc.Hello{PID: os.Getpid(), Version: m.o.Version, Progress: true})
		m.waiters = append(m.waiters, c)
		m.beginStop(req.Graceful)
		// A previous generation still draining stops the same way, so that
		// stop leaves nothing running in the run directory.
		for _, path := range m.otherControls() {
			m.answering.Add(1)
			go func() {
				defer m.answering.Done()
				p := m.o.Paths
				p.Socket = path
				fwd, _ := ipc.New(ipc.TypeStop, 1, req)
				p.Request(fwd, 2*time.Second)
			}()
		}
	case ipc.TypeReload:
		var req ipc.ReloadRequest
		if len(msg.Body) > 0 {
			if err := msg.Decode(&req); err != nil {
				fail(err)
				return
			}
		}
		if req.Progress {
			c = m.watchProgress(c, msg.ID, ipc.TypeReload)
		}
		if err := m.reload(c, msg.ID, req); err != nil {
			fail(fmt.Errorf("reload refused: %w", err))
		}
	case ipc.TypeUpgradeFailed:
		var f ipc.UpgradeFailure
		if err := msg.Decode(&f); err != nil {
			fail(err)
			return
		}
		m.onUpgradeFailure(f)
		ok(nil)
		c.Close()
	case ipc.TypeReopen:
		m.reopen()
		ok(nil)
		c.Close()
	case ipc.TypeProfile:
		m.onProfile(msg, c)
	default:
		fail(fmt.Errorf("unknown request %q", msg.Type))
	}
}

// progressEvery is how often a CLI waiting for a stop or a reload that
// asked for progress gets a TypeProgress frame: its heartbeat (the CLI
// gives up after --timeout without a frame).
const progressEvery = time.Second

// evProgress asks the run loop how a stop or reload goes (watchConn).
type evProgress struct {
	kind  string // ipc.TypeStop or ipc.TypeReload
	since time.Time
	reply chan ipc.Progress // buffered
}

// watchProgress makes c, the connection of a stop or reload request that asked
// for progress, a watchConn: until it closes, it gets a TypeProgress
// frame every progressEvery.
func (m *master) watchProgress(c net.Conn, id uint64, kind string) net.Conn {
	w := &watchConn{Conn: c, m: m, id: id, kind: kind, since: time.Now(), done: make(chan struct{})}
	go w.run()
	return w
}

// progress says how a stop or a reload goes (the run loop answers
// evProgress).
func (m *master) progress(e evProgress) ipc.Progress {
	p := ipc.Progress{PID: os.Getpid(), State: m.state, Workers: len(m.procs), Seconds: time.Since(e.since).Seconds()}
	for proc := range m.procs {
		if last, ok, _ := proc.lastAnswer(); ok {
			p.Connections += last.Connections
		}
	}
	if e.kind == ipc.TypeReload && m.upgrading {
		p.Note = "the new master starts"
		if !m.parentGone {
			p.Note = "the previous generation drains before the new master starts"
		}
	}
	return p
}

// watchConn is the connection of a CLI waiting for a stop or a reload
// that asked for progress: a goroutine asks the run loop how it goes
// every progressEvery (evProgress) and writes the answer, until the
// connection closes. Its frames go out whole among the answers (Write
// is serialized); one that cannot be written (the CLI is gone) ends the
// goroutine.
type watchConn struct {
	net.Conn
	m     *master
	id    uint64
	kind  string
	since time.Time
	wmu   sync.Mutex
	done  chan struct{}
	once  sync.Once
}

func (w *watchConn) Write(b []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.Conn.Write(b)
}

func (w *watchConn) Close() error {
	w.once.Do(func() { close(w.done) })
	return w.Conn.Close()
}

func (w *watchConn) run() {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.done:
			return
		}
		reply := make(chan ipc.Progress, 1)
		select {
		case w.m.events <- evProgress{kind: w.kind, since: w.since, reply: reply}:
		case <-w.done:
			return
		case <-w.m.done:
			return
		}
		var p ipc.Progress
		select {
		case p = <-reply:
		case <-w.done:
			return
		case <-w.m.done:
			return
		}
		msg, err := ipc.New(ipc.TypeProgress, w.id, p)
		if err != nil {
			return
		}
		w.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := ipc.NewConn(w).Send(msg); err != nil {
			return
		}
	}
}

type entry struct {
	w ipc.Worker
	p *proc // nil when no process runs for the slot
}

type snapshot struct {
	master   ipc.MasterStatus
	entries  []entry
	retiring []entry
	orphans  []ipc.Worker // orphans of a dead master, shown among the retiring
	carried  []ipc.Carried
}

// snapshot copies what status needs, in the run loop.
func (m *master) snapshot() snapshot {
	snap := snapshot{master: ipc.MasterStatus{
		PID:           os.Getpid(),
		Version:       m.o.Version,
		StartedAt:     m.started,
		UptimeSeconds: time.Since(m.started).Seconds(),
		State:         m.state,
		RunDir:        m.o.Paths.Dir,
		Generation:    m.gen,
		Workers:       len(m.slots),
		ExitCount:     m.exitCount,
		MasterOps:     m.ops,
	}}
	// The maps go to another goroutine: copies.
	snap.master.Recycles = maps.Clone(m.ops.Recycles)
	snap.master.Reloads = maps.Clone(m.ops.Reloads)
	if m.o.Cluster != nil {
		snap.master.Cluster = m.o.Cluster()
	}
	m.fillFigures(&snap.master)
	addMasterCounters(&snap.master, m.inheritedMaster)
	for p := range m.procs {
		if p.unresponsive {
			snap.master.Unresponsive++
		}
	}
	base := func(s *slot) ipc.Worker {
		l := m.o.Listeners[s.listener]
		addr := l.Addr
		if s.listener < len(m.bound) {
			addr = m.bound[s.listener]
		}
		return ipc.Worker{
			MasterPID: os.Getpid(), ID: s.id, Index: s.index, Name: l.Name, Listen: l.Network + "://" + addr,
			Transport: l.Transport, Protocol: l.Protocol, State: s.state,
			ExitCount: s.exitCount, LastExit: s.lastExit, Generation: m.gen, Ops: s.ops,
		}
	}
	withProc := func(w ipc.Worker, p *proc) ipc.Worker {
		w.PID, w.Generation, w.StartedAt, w.State, w.Route = p.pid, p.gen, p.started, p.state, p.route
		if p.unresponsive {
			w.State = StateUnresponsive
		}
		return w
	}
	for _, s := range m.slots {
		w := base(s)
		if p := s.cur; p != nil {
			w = withProc(w, p)
		}
		snap.entries = append(snap.entries, entry{w: w, p: s.cur})
	}
	for p := range m.procs {
		if p.retiring {
			w := withProc(base(p.slot), p)
			w.Ops = ipc.Ops{} // the id's counts are on its entry in Workers
			snap.retiring = append(snap.retiring, entry{w: w, p: p})
		}
	}
	snap.orphans = m.orphanEntries()
	for _, s := range m.slots {
		c := ipc.Carried{Name: m.o.Listeners[s.listener].Name, ID: s.id}
		addCounters(&c.Load, s.carried) // a copy: the status goroutine reads it
		snap.carried = append(snap.carried, c)
	}
	for _, in := range m.inherited {
		c := ipc.Carried{Name: in.Name, ID: in.ID, Counts: in.Counts}
		addCounters(&c.Load, in.Load)
		snap.carried = append(snap.carried, c)
	}
	sort.Slice(snap.retiring, func(i, j int) bool {
		a, b := snap.retiring[i].w, snap.retiring[j].w
		return a.ID < b.ID || a.ID == b.ID && a.PID < b.PID
	})
	return snap
}

// Bounds of a status request: status answers within about the longer of
// the two, however the workers and the other masters fare. A worker that
// does not answer in time is shown with the figures of its last answer
// (the watchdog asks every WatchdogInterval) and how long it has been
// silent.
const (
	statusAskWorker = 100 * time.Millisecond
	statusAskMaster = 150 * time.Millisecond
)

// gatherStatus asks every worker, and the other masters of the run
// directory, for their stats (bounded: statusAskWorker, statusAskMaster).
func (m *master) gatherStatus(snap snapshot, others []string) ipc.Status {
	var (
		prevMu sync.Mutex
		more   []ipc.Status
		owg    sync.WaitGroup
	)
	for _, path := range others {
		owg.Add(1)
		go func() {
			defer owg.Done()
			p := m.o.Paths
			p.Socket = path
			req, _ := ipc.New(ipc.TypeStatus, 1, ipc.StatusRequest{Local: true})
			ans, err := p.Request(req, statusAskMaster)
			var st ipc.Status
			if err == nil && ans.Decode(&st) == nil {
				prevMu.Lock()
				more = append(more, st)
				prevMu.Unlock()
			}
		}()
	}
	var wg sync.WaitGroup
	ask := func(e *entry) {
		if e.p == nil || e.w.State == StateStarting {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.p.askStats(statusAskWorker); err != nil {
				// The last figures are shown: the worker is slow, stopped
				// or gone (the watchdog judges which).
				m.log.Debug().Err(err).Int("worker", e.w.ID).Msg("status shows a worker's last figures")
			}
		}()
	}
	for i := range snap.entries {
		ask(&snap.entries[i])
	}
	for i := range snap.retiring {
		ask(&snap.retiring[i])
	}
	wg.Wait()
	owg.Wait()
	now := time.Now()
	fill := func(e entry) ipc.Worker {
		w := e.w
		if e.p == nil {
			return w
		}
		last, ok, seen := e.p.lastAnswer()
		if ok {
			w.Load = last.Load
		}
		if !seen.IsZero() {
			w.LastSeen = seen
			w.SilentSeconds = now.Sub(seen).Seconds()
		}
		return w
	}
	st := ipc.Status{Master: snap.master, Workers: make([]ipc.Worker, 0, len(snap.entries))}
	for _, e := range snap.entries {
		st.Workers = append(st.Workers, fill(e))
	}
	for _, e := range snap.retiring {
		st.Retiring = append(st.Retiring, fill(e))
	}
	st.Retiring = append(st.Retiring, snap.orphans...)
	st.Carried = snap.carried
	sort.Slice(more, func(i, j int) bool { return more[i].Master.Generation < more[j].Master.Generation })
	for _, o := range more {
		st.Others = append(st.Others, o.Master)
		st.Workers = append(st.Workers, o.Workers...)
		st.Retiring = append(st.Retiring, o.Retiring...)
	}
	return st
}

// gatherConns lists the connections of every worker (2 s bound) but those
// the watchdog found unresponsive.
func gatherConns(entries []entry) []ipc.ConnInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out = []ipc.ConnInfo{}
	)
	for _, e := range entries {
		if e.p == nil || e.w.State == StateUnresponsive {
			continue // an unresponsive worker would only hold the answer up
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := e.p.request(ctx, ipc.TypeConnections, nil)
			var list []ipc.ConnInfo
			if err == nil && len(ans.Body) > 0 {
				err = ans.Decode(&list)
			}
			if err != nil {
				return
			}
			mu.Lock()
			out = append(out, list...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Worker != out[j].Worker {
			return out[i].Worker < out[j].Worker
		}
		return out[i].ID < out[j].ID
	})
	return out
}
