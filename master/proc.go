//go:build unix

package master

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// slot is one worker id and the process serving it (cur; nil between a
// death and the respawn). A reload replaces the whole master, so the
// slots of a master never see two generations. A recycle overlaps two
// processes of one slot briefly: the replacement (next) starts while cur
// serves, becomes cur once it accepts, and the old process drains as a
// retiring proc (proc.retiring), which belongs to no slot's cur or next.
//
// Owner: the run loop, for every field. id, listener and index never
// change after newMaster. timer's function runs on its own goroutine and
// only sends evRespawn to the run loop.
type slot struct {
	id, listener, index int         // fixed at newMaster
	cur                 *proc       // run loop
	next                *proc       // run loop: a recycle's replacement, until it is ready
	state               string      // run loop; shown in status
	exitCount           int         // run loop
	lastExit            string      // run loop
	quickFails          int         // run loop: quick deaths in a row
	timer               *time.Timer // run loop: a pending evRespawn
	ops                 ipc.Ops     // run loop: watchdog and recycle counts (LastSeen, SilentSeconds unused)
	// carried sums the counters of the id's exited processes (their
	// final figures, TypeFinal, or their last answer): run loop.
	carried ipc.Load
}

// proc is one worker process.
//
// Goroutines that touch a proc: the run loop (owner), the proc's read
// goroutine (control channel in), the proc's cmd.Wait goroutine, and the
// status goroutines of the control socket (gatherStatus, gatherConns),
// which call request concurrently with one another and with the run loop.
// Those share seq (atomic), pending and gone (under mu), and the fields
// fixed at spawn; every other field is the run loop's alone.
type proc struct {
	// Fixed at spawn, before any other goroutine sees p: read by all.
	slot    *slot // only slot.id is read outside the run loop
	gen     int
	pid     int
	route   uint32
	started time.Time
	// shareSlot is the process's slot in its listener's accept share
	// (socket.share); -1: none. The run loop frees it in onExit.
	shareSlot int
	// process: the run loop kills through it; the wait goroutine owns
	// its Wait (spawn.go).
	process process
	// conn and ctl: set at spawn. Writes (tell from the run loop, request
	// from status goroutines) are serialised by ipc.Conn; net.Conn's
	// deadlines and Close are safe for concurrent use. Recv belongs to the
	// read goroutine. The run loop closes conn in onExit.
	conn net.Conn
	ctl  *ipc.Conn

	// Run loop only.
	ready   bool
	readyAt time.Time
	state   string
	// recycle is the reason of the recycle this proc replaces cur for
	// (it is s.next), empty otherwise.
	recycle string
	// retiring: a recycle replaced this proc; it drains and exits, and
	// nothing respawns it.
	retiring bool
	// killTimer bounds a replacement's start or a retiring proc's drain;
	// its function only sends evKillProc.
	killTimer *time.Timer
	// unresponsive: the watchdog found it silent (logged once); killed:
	// the watchdog killed it.
	unresponsive, killed bool
	// probing: a watchdog probe is in flight (any goroutine).
	probing atomic.Bool
	// final: its final figures (TypeFinal) came (read goroutine); an
	// answer to an earlier stats request, recorded after them, does not
	// replace them (seen).
	final atomic.Bool
	// out is the read end of the worker's output pipe (WrapOutput), read
	// by copyOutput; nil without.
	out *os.File
	// orphanAt is the path of the worker's socket (orphans.go), removed
	// when it exits; empty without one.
	orphanAt string

	// Shared with the read goroutine and the status goroutines.
	seq     atomic.Uint64               // request ids; any goroutine
	mu      sync.Mutex                  // guards pending and the closing of gone
	pending map[uint64]chan ipc.Message // under mu: request adds, read answers and removes
	gone    chan struct{}               // closed (under mu) by read when the control channel is gone
	// Under mu: the last answer to a stats request (probe or status) and
	// when it came; lastSeen starts at ready (run loop, under mu).
	last     ipc.WorkerStats
	lastID   uint64 // the request last answered with last
	hasLast  bool
	lastSeen time.Time
}

// seen records an answer of the worker: its figures and that it lives.
func (p *proc) seen(st ipc.WorkerStats, id uint64) {
	p.mu.Lock()
	// Answers to concurrent requests (the watchdog's, a status's) may be
	// recorded out of order: the figures of a later request stay, so that
	// a counter never shows less than it did.
	if !p.final.Load() && id >= p.lastID {
		p.last, p.hasLast, p.lastID = st, true, id
	}
	p.lastSeen = time.Now()
	p.mu.Unlock()
}

// lastAnswer returns the last figures the worker reported (ok false before
// any) and when it last answered.
func (p *proc) lastAnswer() (st ipc.WorkerStats, ok bool, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.hasLast, p.lastSeen
}

// askStats asks the worker for its figures within d and records them.
// Safe for concurrent use.
func (p *proc) askStats(d time.Duration) (ipc.WorkerStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ans, err := p.request(ctx, ipc.TypeStats, nil)
	var st ipc.WorkerStats
	if err == nil {
		err = ans.Decode(&st)
	}
	if err != nil {
		return st, err
	}
	p.seen(st, ans.ID)
	return st, nil
}

// spawn starts a worker process for s, which becomes s.cur.
func (m *master) spawn(s *slot) error {
	p, err := m.spawnProc(s)
	if err != nil {
		return err
	}
	s.cur = p
	s.state = StateStarting
	return nil
}

// spawnProc starts a worker process for s; the caller places it in s.
func (m *master) spawnProc(s *slot) (*proc, error) {
	sock := m.sockets[s.listener]
	sockFile, err := m.sp.dupFile(sock.conn(), "listener")
	if err != nil {
		return nil, fmt.Errorf("master: worker %d: %w", s.id, err)
	}
	defer sockFile.Close()
	fds, err := m.sp.socketpair()
	if err != nil {
		return nil, fmt.Errorf("master: worker %d: socketpair: %w", s.id, err)
	}
	mine := os.NewFile(uintptr(fds[0]), "control")
	theirs := os.NewFile(uintptr(fds[1]), "control")
	defer theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return nil, fmt.Errorf("master: worker %d: control channel: %w", s.id, err)
	}
	stdout, stderr := m.o.Stdout, m.o.Stderr
	var outR *os.File
	if m.o.WrapOutput {
		r, w, err := os.Pipe()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("master: worker %d: output pipe: %w", s.id, err)
		}
		defer w.Close()
		outR, stdout, stderr = r, w, w
	}

	id := Identity{ID: s.id, Listener: s.listener, Index: s.index, Route: m.takeRoute(), Generation: m.gen}
	w := m.o.Worker
	w.Identity = id
	w.LogPipe = m.o.WrapOutput
	var extra []string
	if m.o.WorkerEnv != nil {
		extra = m.o.WorkerEnv(id)
	}
	// ExtraFiles[i] is the child's descriptor 3+i (nil: closed).
	files := make([]*os.File, max(procenv.CtlFD, procenv.SocketFD)-2, procenv.OrphanFD-2)
	files[procenv.CtlFD-3], files[procenv.SocketFD-3] = theirs, sockFile
	shareSlot := sock.takeShareSlot()
	if shareSlot >= 0 {
		files = files[:procenv.AcceptShareFD-2]
		files[procenv.AcceptShareFD-3] = sock.share.File()
		w.AcceptShare, w.AcceptSlot = true, shareSlot
	}
	orphanPath, orphanFile := m.workerSocket(id.Route)
	if orphanFile != nil {
		defer orphanFile.Close()
		files = files[:procenv.OrphanFD-2]
		files[procenv.OrphanFD-3] = orphanFile
		w.OrphanTimeout = m.o.OrphanTimeout
	}
	if m.tickets != nil {
		if kf, err := m.tickets.File(); err != nil {
			// The worker resumes only its own sessions.
			m.log.Warn().Err(err).Int("worker", s.id).Msg("TLS session ticket keys not passed")
		} else {
			defer kf.Close()
			for len(files) < procenv.TicketKeysFD-2 {
				files = append(files, nil)
			}
			files[procenv.TicketKeysFD-3] = kf
			w.TicketKeys = true
		}
	}
	cmd := &exec.Cmd{
		Path:       m.o.Exe,
		Args:       m.workerArgs(s), // argv[0] is the worker's title (title.go)
		Env:        w.Environ(m.o.Env, extra),
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: files,
	}
	if m.o.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.o.Credential}
	}
	pr, err := m.sp.start(cmd)
	if err != nil {
		if orphanPath != "" {
			os.Remove(orphanPath)
		}
		sock.releaseShareSlot(shareSlot)
		conn.Close()
		if outR != nil {
			outR.Close()
		}
		return nil, fmt.Errorf("master: start worker %d: %w", s.id, err)
	}
	p := &proc{
		slot:      s,
		gen:       m.gen,
		pid:       pr.Pid(),
		route:     id.Route,
		shareSlot: shareSlot,
		process:   pr,
		conn:      conn,
		ctl:       ipc.NewConn(conn),
		started:   time.Now(),
		state:     StateStarting,
		pending:   make(map[uint64]chan ipc.Message),
		gone:      make(chan struct{}),
		out:       outR,
		orphanAt:  orphanPath,
	}
	m.procs[p] = struct{}{}
	if shareSlot >= 0 {
		sock.held[shareSlot] = p.pid
	}
	if outR != nil {
		m.copying.Add(1)
		go func() {
			defer m.copying.Done()
			m.copyOutput(p)
		}()
	}
	go p.read(m)
	go func() {
		status, err := pr.Wait()
		m.send(evExit{p: p, status: status, err: err})
	}()
	m.log.Debug().Int("worker", s.id).Int("worker_pid", p.pid).Int("generation", p.gen).Msg("worker spawned")
	return p, nil
}

// takeRoute returns the next worker route, never 0.
func (m *master) takeRoute() uint32 {
	if m.nextRoute == 0 {
		m.nextRoute++
	}
	r := m.nextRoute
	m.nextRoute++
	return r
}

// socketpair returns a connected pair of Unix stream sockets, both
// close-on-exec (set under ForkLock: a fork meanwhile does not inherit
// them; not every Unix has SOCK_CLOEXEC).
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return [2]int{}, err
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	return [2]int{fds[0], fds[1]}, nil
}

// read serves p's control channel: the ready event and answers.
func (p *proc) read(m *master) {
	defer func() {
		p.mu.Lock()
		close(p.gone)
		p.mu.Unlock()
	}()
	for {
		msg, err := p.ctl.Recv()
		if err != nil {
			return
		}
		switch msg.Type {
		case ipc.TypeReady:
			m.send(evReady{p})
			continue
		case ipc.TypeFinal:
			var st ipc.WorkerStats
			if msg.Decode(&st) == nil {
				p.mu.Lock()
				p.last, p.hasLast, p.lastSeen = st, true, time.Now()
				p.final.Store(true)
				p.mu.Unlock()
			}
			continue
		case ipc.TypeRecycle:
			var req ipc.RecycleRequest
			if msg.Decode(&req) == nil {
				m.send(evRecycle{p: p, req: req})
			}
			continue
		}
		p.mu.Lock()
		ch := p.pending[msg.ID]
		delete(p.pending, msg.ID)
		p.mu.Unlock()
		if ch != nil {
			ch <- msg
		}
	}
}

// request asks the worker and waits for its answer. Safe for concurrent use.
func (p *proc) request(ctx context.Context, typ string, body any) (ipc.Message, error) {
	id := p.seq.Add(1)
	msg, err := ipc.New(typ, id, body)
	if err != nil {
		return ipc.Message{}, err
	}
	ch := make(chan ipc.Message, 1)
	p.mu.Lock()
	select {
	case <-p.gone:
		p.mu.Unlock()
		return ipc.Message{}, fmt.Errorf("master: worker %d (pid %d) is gone", p.slot.id, p.pid)
	default:
	}
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()
	p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if err := p.ctl.Send(msg); err != nil {
		return ipc.Message{}, fmt.Errorf("master: worker %d: send %s: %w", p.slot.id, typ, err)
	}
	select {
	case ans := <-ch:
		if ans.Type == ipc.TypeError {
			return ans, fmt.Errorf("master: worker %d: %s", p.slot.id, ans.Error)
		}
		return ans, nil
	case <-p.gone:
		return ipc.Message{}, fmt.Errorf("master: worker %d (pid %d) is gone", p.slot.id, p.pid)
	case <-ctx.Done():
		return ipc.Message{}, fmt.Errorf("master: worker %d: %s: %w", p.slot.id, typ, ctx.Err())
	}
}

// tell sends a request without waiting for the answer.
func (p *proc) tell(typ string, body any) {
	msg, err := ipc.New(typ, p.seq.Add(1), body)
	if err != nil {
		return
	}
	p.conn.SetWriteDeadline(time.Now().Add(time.Second))
	p.ctl.Send(msg) // a dead worker is reaped by its cmd.Wait
}
