//go:build unix

// Package master is the supervisor of goes: it owns the listening
// sockets, forks the workers that serve them, replaces a worker that dies
// (same id, backoff, crash-loop limit), answers the CLI on a control
// socket in the run directory and handles the process signals.
//
// The master never accepts. Every worker of a listener inherits a
// duplicate of the same socket, so they all share ONE accept queue (no
// SO_REUSEPORT); the master's own copy stays non-blocking.
//
// All of the master's state is owned by the goroutine that runs Run; the
// other goroutines (one cmd.Wait and one control reader per worker, the
// control socket's accept loop) talk to it over a channel.
package master

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/ipc"
)

// Environment of a worker process.
const (
	// EnvRole is "worker" in a worker process.
	EnvRole = "GOES_ROLE"
	// EnvWorker holds the worker's identity: "id,listener,index,route,generation".
	EnvWorker = "GOES_WORKER"
	// RoleWorker is EnvRole's value in a worker.
	RoleWorker = "worker"

	// CtlFD is the worker's end of its control channel.
	CtlFD = 3
	// SocketFD is the shared listening socket (or datagram socket).
	SocketFD = 4

	tableflipEnv = "TABLEFLIP_HAS_PARENT_7DIU3"
)

// Worker and master states shown in status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateDraining = "draining"
	StateStopping = "stopping"
	StateBackoff  = "backoff"
	StateFailed   = "failed"
)

// Listener is one listening address and the workers that serve it.
type Listener struct {
	// Name shows in status.
	Name string
	// Network is "tcp", "udp" or "unix" (TLS listens on tcp; the workers
	// wrap the socket).
	Network string
	// Addr is host:port or a socket path.
	Addr string
	// Transport and Protocol show in status ("tls", "http", ...).
	Transport, Protocol string
	// Count is the number of workers (default 1).
	Count int
	// StopTimeout bounds a graceful drain of this listener's workers
	// (default 30 s).
	StopTimeout time.Duration
}

// Identity is what a worker learns about itself from EnvWorker.
type Identity struct {
	ID       int // stable, unique among the master's workers
	Listener int // index in Options.Listeners
	Index    int // 0..Count-1 within the listener
	// Route is this worker process's route: the high 32 bits of its
	// connection ids (connections.Config.IDBase), and its address in a
	// cluster. Every worker start gets a new one from its master's
	// counter, which starts at a random value when a master starts cold,
	// continues across upgrades (the new master starts a reserve further,
	// so the old generation's respawns do not meet it) and is never 0.
	// Routes are unique among the live workers of a master and its
	// upgrades; masters that share a cluster draw them at random starts,
	// so a clash needs two 32-bit ranges of started workers to overlap
	// (cluster.NewNode refuses a route in use).
	Route      uint32
	Generation int // bumped by every reload
}

// ParseIdentity parses EnvWorker's value.
func ParseIdentity(s string) (Identity, error) {
	f := strings.Split(s, ",")
	if len(f) != 5 {
		return Identity{}, fmt.Errorf("master: bad %s %q", EnvWorker, s)
	}
	var n [5]int
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil || (i != 3 && v > math.MaxInt32) {
			return Identity{}, fmt.Errorf("master: bad %s %q", EnvWorker, s)
		}
		n[i] = int(v)
	}
	return Identity{ID: n[0], Listener: n[1], Index: n[2], Route: uint32(n[3]), Generation: n[4]}, nil
}

func (id Identity) String() string {
	return fmt.Sprintf("%d,%d,%d,%d,%d", id.ID, id.Listener, id.Index, id.Route, id.Generation)
}

// Options configure Run. The zero value of every field but Listeners and
// Paths works.
type Options struct {
	// Listeners to open and serve.
	Listeners []Listener
	// Paths of the run directory.
	Paths Paths
	// Version shows in status.
	Version string
	// Exe is the binary a worker runs (default: the master's own binary,
	// /proc/self/exe where it exists, so a binary replaced on disk does
	// not mix into this master's workers).
	Exe string
	// Args are the workers' arguments, Args[0] included (default os.Args).
	Args []string
	// Env is the workers' base environment (default os.Environ()); the
	// tableflip marker and the GOES_ variables are stripped from it.
	Env []string
	// WorkerEnv, when set, adds variables to one worker's environment.
	WorkerEnv func(Identity) []string
	// Credential, when set, runs the workers as another user.
	Credential *syscall.Credential
	// Stdout and Stderr are the workers' (default os.Stdout, os.Stderr).
	Stdout, Stderr *os.File
	// ReadyTimeout bounds a worker's start (default 30 s).
	ReadyTimeout time.Duration
	// KillTimeout bounds a fast stop before workers are killed (default 5 s).
	KillTimeout time.Duration
	// CrashLoopLimit is the number of quick deaths in a row after which a
	// worker id is given up (default 10).
	CrashLoopLimit int
	// QuickDeath makes a death quick: the worker died before it was ready
	// or within QuickDeath of becoming ready (default 1 s). It is counted
	// from ready, not from the start, so that a slow start (a loaded
	// machine, a long OnWorkerStart) does not hide a crash loop.
	QuickDeath time.Duration
	// Listen and ListenPacket open the sockets (default net.Listen,
	// net.ListenPacket). With Upgrades they are not used: the sockets come
	// from the previous master, or are opened through tableflip.
	Listen       func(network, addr string) (net.Listener, error)
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// OnReady runs once every worker of the first generation accepts,
	// after the pid file is written.
	OnReady func()
	// OnUpgraded runs when a new master (pid) has taken over after an
	// upgrade; this one then drains its workers and Run returns.
	OnUpgraded func(pid int)
	// OnPreviousExited runs in a master started by an upgrade once the
	// previous master has exited (its workers drained).
	OnPreviousExited func()
	// Cluster, when set, describes the cluster in status.
	Cluster func() *ipc.ClusterInfo
	// Reopen reopens the master's log file (SIGUSR1, reopen request); nil
	// when the master has none (foreground: it logs to stderr). The
	// workers are told to reopen theirs either way.
	Reopen func() error
	// Signals, when false, leaves process signals alone (tests running
	// masters inside one process).
	Signals bool
	// Upgrades makes reload replace the whole master with a new process
	// started from the binary now on disk (cloudflare/tableflip): it
	// inherits the sockets, forks its workers and takes over once they
	// accept; then this master drains its workers and exits. Without it,
	// reload replaces the workers only. Only one master per process may
	// use it (tableflip allows one upgrader per process).
	Upgrades bool
	// UpgradeTimeout bounds a new master's start (default ReadyTimeout +
	// 10 s); past it the new master is killed and the reload fails.
	UpgradeTimeout time.Duration
	// Logger receives the master's events.
	Logger zerolog.Logger
}

// Run runs a master until it is stopped (signal or CLI). It returns an
// error when it cannot start: another master runs there (ErrRunning), a
// socket cannot be opened or a worker fails to start.
func Run(ctx context.Context, o Options) error {
	m, err := newMaster(o)
	if err != nil {
		return err
	}
	return m.run(ctx)
}

type socket struct {
	l  Listener
	ln net.Listener
	pc net.PacketConn
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
}

type slot struct {
	id, listener, index int
	cur, next           *proc
	state               string
	exitCount           int
	lastExit            string
	quickFails          int
	timer               *time.Timer
}

type proc struct {
	slot    *slot
	gen     int
	pid     int
	route   uint32
	cmd     *exec.Cmd
	conn    net.Conn
	ctl     *ipc.Conn
	started time.Time
	ready   bool
	readyAt time.Time
	state   string

	seq     atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan ipc.Message
	gone    chan struct{} // closed when the control channel is gone
}

type event any

type evExit struct {
	p     *proc
	state *os.ProcessState
	err   error
}
type evReady struct{ p *proc }
type evRespawn struct{ s *slot }
type evKill struct{}
type evParentExited struct{ err error }
type evUpgraded struct {
	c        net.Conn
	id       uint64
	graceful bool
	err      error
}
type evRequest struct {
	m ipc.Message
	c net.Conn
}

type master struct {
	o       Options
	log     zerolog.Logger
	events  chan event
	done    chan struct{}
	sockets []*socket
	bound   []string // per listener: the address its socket is bound to
	slots   []*slot
	procs   map[*proc]struct{}

	state     string
	gen       int
	started   time.Time
	exitCount int
	startErr  error
	graceful  bool
	killTimer *time.Timer
	waiters   []net.Conn // CLI conns closed when the master is gone
	reloading *reloadOp
	ctlLn     *net.UnixListener
	ctlPath   string // this master's own control socket; Paths.Socket links to it
	lockFile  *os.File
	readyDone bool
	answering sync.WaitGroup // answers being written by other goroutines

	nextRoute   uint32              // the next worker's route (Identity.Route)
	handedRoute uint32              // the first route given to a new master
	upg         *tableflip.Upgrader // nil without Options.Upgrades
	parentGone  bool                // no older master (or it has exited)
	upgrading   bool                // an Upgrade call is running
	upgraded    bool                // a newer master serves; this one drains and exits
	stop        stopMode
}

// stopMode says how the workers stop.
type stopMode struct {
	graceful  bool // drain rather than close
	reload    bool // the drain is a reload's (OnWorkerReload)
	unbounded bool // no drain timeout (reload -g)
}

type reloadOp struct {
	c        net.Conn
	id       uint64
	graceful bool
	pending  int
	drained  int
	err      error
}

func newMaster(o Options) (*master, error) {
	if len(o.Listeners) == 0 {
		return nil, errors.New("master: no listeners")
	}
	if o.Paths.Dir == "" {
		return nil, errors.New("master: no run directory")
	}
	if o.Exe == "" {
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			o.Exe = "/proc/self/exe"
		} else if o.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("master: find executable: %w", err)
		}
	}
	if o.Args == nil {
		o.Args = os.Args
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.KillTimeout <= 0 {
		o.KillTimeout = 5 * time.Second
	}
	if o.CrashLoopLimit <= 0 {
		o.CrashLoopLimit = 10
	}
	if o.QuickDeath <= 0 {
		o.QuickDeath = time.Second
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = o.ReadyTimeout + 10*time.Second
	}
	if o.Listen == nil {
		o.Listen = listenDefault
	}
	if o.ListenPacket == nil {
		o.ListenPacket = net.ListenPacket
	}
	m := &master{
		o:      o,
		log:    o.Logger,
		events: make(chan event, 16),
		done:   make(chan struct{}),
		procs:  make(map[*proc]struct{}),
		state:  StateStarting,
		gen:    1,
	}
	// Routes (see Identity.Route) start at random; an upgraded master
	// continues its predecessor's (startUpgrader).
	m.nextRoute = rand.Uint32()
	// The listeners get defaults: work on a copy of the caller's slice.
	m.o.Listeners = append([]Listener(nil), o.Listeners...)
	id := 0
	for li, l := range m.o.Listeners {
		if l.Count <= 0 {
			m.o.Listeners[li].Count = 1
			l.Count = 1
		}
		if l.StopTimeout <= 0 {
			m.o.Listeners[li].StopTimeout = 30 * time.Second
		}
		for i := 0; i < l.Count; i++ {
			m.slots = append(m.slots, &slot{id: id, listener: li, index: i, state: StateStarting})
			id++
		}
	}
	return m, nil
}

// send delivers an event to the run loop unless it has returned.
func (m *master) send(e event) {
	select {
	case m.events <- e:
	case <-m.done:
	}
}

func (m *master) run(ctx context.Context) (err error) {
	defer close(m.done)
	m.started = time.Now()
	if err := m.o.Paths.EnsureDir(); err != nil {
		return err
	}
	m.parentGone = true
	if m.o.Upgrades {
		if err := m.startUpgrader(); err != nil {
			return err
		}
		defer m.upg.Stop()
	}
	if m.lockFile == nil {
		if m.lockFile, err = m.o.Paths.lock(); err != nil {
			return err
		}
	}
	defer m.lockFile.Close()
	if m.upg != nil {
		if err := m.upg.AddFile(lockFileName, m.lockFile); err != nil {
			return fmt.Errorf("master: pass the lock on: %w", err)
		}
	}
	if err := m.listenControl(); err != nil {
		return err
	}
	defer m.closeControl()
	if err := m.openSockets(); err != nil {
		m.closeSockets(true)
		return err
	}

	var sigs chan os.Signal
	if m.o.Signals {
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1)
		defer signal.Stop(sigs)
	}
	m.log.Info().Int("workers", len(m.slots)).Str("run_dir", m.o.Paths.Dir).Str("version", m.o.Version).Msg("master starting")
	for _, s := range m.slots {
		if err := m.spawn(s, nil); err != nil {
			m.startErr = err
			m.beginStop(false)
			break
		}
	}
	startTimer := time.NewTimer(m.o.ReadyTimeout)
	defer startTimer.Stop()

	ctxDone := ctx.Done()
	for m.state != StateStopping || len(m.procs) > 0 {
		select {
		case <-ctxDone:
			ctxDone = nil
			m.beginStop(false)
		case <-startTimer.C:
			if m.state == StateStarting {
				m.startErr = fmt.Errorf("master: workers not ready after %s", m.o.ReadyTimeout)
				m.beginStop(false)
			}
		case sig := <-sigs:
			m.onSignal(sig)
		case e := <-m.events:
			m.handle(e)
		}
	}
	m.closeSockets(!m.upgraded)
	m.answering.Wait() // bounded: every answer has a deadline
	if m.readyDone && !m.upgraded {
		// The pid file and the control link are this master's: a newer
		// master (after an upgrade) owns them otherwise.
		os.Remove(m.o.Paths.PID)
	}
	if m.startErr != nil {
		m.log.Error().Err(m.startErr).Msg("master failed to start")
		return m.startErr
	}
	if m.upgraded {
		m.log.Info().Msg("old master exited after the upgrade")
		return nil
	}
	m.log.Info().Msg("master stopped")
	return nil
}

func (m *master) onSignal(sig os.Signal) {
	m.log.Info().Str("signal", sig.String()).Msg("signal received")
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		m.beginStop(false)
	case syscall.SIGQUIT:
		m.beginStop(true)
	case syscall.SIGHUP:
		if err := m.reload(nil, 0, false); err != nil {
			m.log.Warn().Err(err).Msg("reload refused")
		}
	case syscall.SIGUSR1:
		m.reopen()
	}
}

func (m *master) openSockets() error {
	listen, listenPacket := m.o.Listen, m.o.ListenPacket
	for i, l := range m.o.Listeners {
		if m.upg != nil {
			listen = func(string, string) (net.Listener, error) { return m.upgListen(i, l) }
			listenPacket = func(string, string) (net.PacketConn, error) { return m.upgListenPacket(i, l) }
		}
		s := &socket{l: l}
		var err error
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
		if err != nil {
			return fmt.Errorf("master: listen %s %s: %w", l.Network, l.Addr, err)
		}
		m.sockets = append(m.sockets, s)
		bound := l.Addr
		if s.ln != nil {
			bound = s.ln.Addr().String()
		} else if s.pc != nil {
			bound = s.pc.LocalAddr().String()
		}
		m.bound = append(m.bound, bound)
		m.log.Info().Str("listen", l.Network+"://"+bound).Str("name", l.Name).Int("count", l.Count).Msg("listening")
	}
	return nil
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

// spawn starts a worker process for s; during a reload it becomes s.next.
func (m *master) spawn(s *slot, reload *reloadOp) error {
	sock := m.sockets[s.listener]
	sockFile, err := dupFile(sock.conn(), "listener")
	if err != nil {
		return fmt.Errorf("master: worker %d: %w", s.id, err)
	}
	defer sockFile.Close()
	fds, err := socketpair()
	if err != nil {
		return fmt.Errorf("master: worker %d: socketpair: %w", s.id, err)
	}
	mine := os.NewFile(uintptr(fds[0]), "control")
	theirs := os.NewFile(uintptr(fds[1]), "control")
	defer theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		return fmt.Errorf("master: worker %d: control channel: %w", s.id, err)
	}

	id := Identity{ID: s.id, Listener: s.listener, Index: s.index, Route: m.takeRoute(), Generation: m.gen}
	env := make([]string, 0, len(m.o.Env)+4)
	for _, kv := range m.o.Env {
		if strings.HasPrefix(kv, tableflipEnv+"=") || strings.HasPrefix(kv, "GOES_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, EnvRole+"="+RoleWorker, EnvWorker+"="+id.String())
	if m.o.WorkerEnv != nil {
		env = append(env, m.o.WorkerEnv(id)...)
	}
	cmd := &exec.Cmd{
		Path:       m.o.Exe,
		Args:       m.o.Args,
		Env:        env,
		Stdout:     m.o.Stdout,
		Stderr:     m.o.Stderr,
		ExtraFiles: []*os.File{theirs, sockFile},
	}
	if m.o.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.o.Credential}
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return fmt.Errorf("master: start worker %d: %w", s.id, err)
	}
	p := &proc{
		slot:    s,
		gen:     m.gen,
		pid:     cmd.Process.Pid,
		route:   id.Route,
		cmd:     cmd,
		conn:    conn,
		ctl:     ipc.NewConn(conn),
		started: time.Now(),
		state:   StateStarting,
		pending: make(map[uint64]chan ipc.Message),
		gone:    make(chan struct{}),
	}
	m.procs[p] = struct{}{}
	if reload != nil {
		s.next = p
	} else {
		s.cur = p
		s.state = StateStarting
	}
	go p.read(m)
	go func() {
		err := cmd.Wait()
		m.send(evExit{p: p, state: cmd.ProcessState, err: err})
	}()
	m.log.Debug().Int("worker", s.id).Int("worker_pid", p.pid).Int("generation", p.gen).Msg("worker spawned")
	return nil
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
		if msg.Type == ipc.TypeReady {
			m.send(evReady{p})
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

func (m *master) handle(e event) {
	switch e := e.(type) {
	case evReady:
		m.onReady(e.p)
	case evExit:
		m.onExit(e.p, e.state)
	case evRespawn:
		s := e.s
		s.timer = nil
		if m.state == StateStopping || s.cur != nil {
			return
		}
		if err := m.spawn(s, nil); err != nil {
			m.log.Error().Err(err).Int("worker", s.id).Msg("worker respawn failed")
			m.scheduleRespawn(s)
		}
	case evKill:
		for p := range m.procs {
			m.log.Warn().Int("worker", p.slot.id).Int("worker_pid", p.pid).Msg("worker did not stop in time, killing")
			p.cmd.Process.Kill()
		}
	case evRequest:
		m.onRequest(e.m, e.c)
	case evParentExited:
		m.parentGone = true
		if e.err != nil {
			m.log.Warn().Err(e.err).Msg("previous master misbehaved while exiting")
		} else {
			m.log.Info().Msg("previous master exited")
		}
		if m.o.OnPreviousExited != nil {
			m.o.OnPreviousExited()
		}
	case evUpgraded:
		m.onUpgraded(e)
	}
}

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
	if s.next == p {
		old := s.cur
		s.cur, s.next = p, nil
		if old != nil {
			timeout := m.o.Listeners[s.listener].StopTimeout
			if m.reloading != nil && m.reloading.graceful {
				timeout = 0
			}
			m.drainProc(old, true, timeout)
			if m.reloading != nil {
				m.reloading.drained++
			}
		}
		if r := m.reloading; r != nil {
			r.pending--
			if r.pending == 0 {
				m.finishReload()
			}
		}
	}
	if s.cur == p {
		s.state = StateRunning
	}
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
			err = m.upg.Ready()
		}
		if err != nil {
			m.startErr = err
			m.beginStop(false)
			return
		}
		m.readyDone = true
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
	switch {
	case s.cur == p:
		s.cur = nil
		if m.state == StateStopping {
			m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Msg("worker exited")
			s.state = StateStopping
			return
		}
		s.exitCount++
		m.exitCount++
		s.lastExit = status
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
		m.scheduleRespawn(s)
	case s.next == p:
		s.next = nil
		s.exitCount++
		m.exitCount++
		s.lastExit = status
		m.log.Error().Int("worker", s.id).Int("worker_pid", p.pid).Str("exit", status).Msg("new worker exited before ready, reload failed")
		if r := m.reloading; r != nil {
			r.err = fmt.Errorf("worker %d (pid %d) of the new generation exited: %s", s.id, p.pid, status)
			r.pending--
			if r.pending == 0 {
				m.finishReload()
			}
		}
	default:
		m.log.Info().Int("worker", s.id).Int("worker_pid", p.pid).Int("generation", p.gen).Str("exit", status).Msg("old worker exited")
	}
}

func (m *master) scheduleRespawn(s *slot) {
	// One quick death restarts at once; more in a row back off 100 ms,
	// 200 ms, ... up to 10 s.
	delay := time.Duration(0)
	if s.quickFails > 1 {
		delay = min(100*time.Millisecond<<(s.quickFails-2), 10*time.Second)
	}
	if delay == 0 {
		err := m.spawn(s, nil)
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
	if m.reloading != nil {
		m.reloading.err = errors.New("master is stopping")
		m.finishReload()
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

func (m *master) reopen() {
	for p := range m.procs {
		p.tell(ipc.TypeReopen, nil)
	}
	if m.o.Reopen == nil {
		m.log.Info().Msg("no log file to reopen: the master logs to stderr")
		return
	}
	if err := m.o.Reopen(); err != nil {
		m.log.Error().Err(err).Msg("reopen log failed")
		return
	}
	m.log.Info().Msg("logs reopened")
}

func answer(c net.Conn, msg ipc.Message) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	ipc.NewConn(c).Send(msg)
}
