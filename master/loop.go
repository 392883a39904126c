//go:build unix

package master

import (
	"github.com/goes-project/goes/internal/ticketkeys"

	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/ipc"
)

type event any

type evExit struct {
	p      *proc
	status string // how it ended (process.Wait)
	err    error
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
type evRecycle struct {
	p   *proc
	req ipc.RecycleRequest
}
type evKillProc struct {
	p   *proc
	why string
}

// master is the state of one Run. Owner: the run loop (the goroutine in
// run), for every field not marked otherwise. Other goroutines (cmd.Wait
// and read per worker, the control socket's accept loop and its
// answering goroutines, the upgrade goroutine, timers) reach the run loop
// through events only, and read just the fields marked "any goroutine".
type master struct {
	o      Options        // any goroutine: fixed after newMaster
	sp     spawner        // any goroutine: fixed after newMaster (tests replace it before the run)
	log    zerolog.Logger // any goroutine
	events chan event     // any goroutine: send
	done   chan struct{}  // any goroutine: closed when run returns
	// loopGone is closed (any goroutine reads it) once the run loop takes
	// no more events: the admin endpoint's requests answer at once then.
	loopGone chan struct{}
	sockets  []*socket
	bound    []string // per listener: the address its socket is bound to
	slots    []*slot
	procs    map[*proc]struct{}

	state     string
	gen       int
	started   time.Time // set when run starts
	exitCount int
	startErr  error
	killTimer *time.Timer
	waiters   []net.Conn // CLI conns closed when the master is gone
	ctlLn     *net.UnixListener
	ctlPath   string // this master's own control socket; Paths.Socket links to it
	// reserve and ctlOpen (any goroutine): descriptors kept for the
	// control socket, and its connections open (accept.go).
	reserve   *fdReserve
	ctlOpen   atomic.Int64
	lockFile  *os.File
	readyDone bool
	answering sync.WaitGroup // any goroutine: answers being written by other goroutines (Add in the run loop)

	nextRoute   uint32 // the next worker's route (Identity.Route)
	handedRoute uint32 // the first route given to a new master
	// upg is Options.Upgrader, set before the run loop starts; safe for
	// concurrent use: the upgrade goroutine calls WaitForParent and
	// upgrade.
	upg *Upgrader
	// tickets is the TLS session ticket key set of all workers
	// (tickets.go); nil only before the run.
	tickets    ticketkeys.Set
	parentGone bool // no older master (or it has exited)
	upgrading  bool // an Upgrade call is running
	upgraded   bool // a newer master serves; this one drains and exits
	stop       stopMode
	adm        *admin  // the admin endpoint; nil without Options.Admin
	figs       figures // counts for status and metrics
	// inherited are the totals of the previous generations, per listener
	// name and id (run loop): prev's last figures, taken over when the
	// previous master exits.
	inherited []ipc.Carried
	// inheritedMaster holds the counters of the previous generations'
	// masters (addMasterCounters), as inherited.
	inheritedMaster ipc.MasterStatus
	prev            previous

	// Operations: watchdog, recycling, reload results.
	ops           ipc.MasterOps  // counters (Unresponsive is counted in snapshot)
	upgradeReport string         // why the new master of the reload in progress failed, as it said
	copying       sync.WaitGroup // any goroutine: copyOutput (Add in the run loop)

	// Orphans of a master that died (orphans.go).
	orphans         []*orphanProc
	adopted         map[int]*os.File     // listener index → socket taken from an orphan, until openSockets
	foreignUntil    time.Time            // retry binding until then: orphans of another version release the addresses
	orphansReleased time.Time            // when the orphans were told to drain
	strayTried      map[string]time.Time // worker socket → when scanStrays may ask it again
}

// stopMode says how the workers stop.
type stopMode struct {
	graceful  bool // drain rather than close
	reload    bool // the drain is a reload's (OnWorkerReload)
	unbounded bool // no drain timeout (reload -g)
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
	if o.TicketKeyRotation <= 0 {
		o.TicketKeyRotation = DefaultTicketKeyRotation
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	o.timeouts()
	if o.KillTimeout <= 0 {
		o.KillTimeout = 5 * time.Second
	}
	if o.CrashLoopLimit <= 0 {
		o.CrashLoopLimit = 10
	}
	if o.QuickDeath <= 0 {
		o.QuickDeath = time.Second
	}
	o.opsDefaults()
	if o.OrphanTimeout == 0 {
		o.OrphanTimeout = DefaultOrphanTimeout
	}
	if o.Listen == nil {
		o.Listen = listenDefault
	}
	if o.ListenPacket == nil {
		o.ListenPacket = net.ListenPacket
	}
	m := &master{
		o:      o,
		sp:     osSpawner,
		log:    o.Logger,
		events: make(chan event, 16),
		done:   make(chan struct{}),
		procs:  make(map[*proc]struct{}),

		loopGone: make(chan struct{}),
		state:    StateStarting,
		gen:      1,
	}
	m.ops.Recycles = map[string]int{}
	m.ops.Reloads = map[string]int{}
	m.ops.Watchdog = ipc.WatchdogSettings{
		IntervalSeconds:     o.WatchdogInterval.Seconds(),
		UnresponsiveSeconds: o.UnresponsiveTimeout.Seconds(),
		KillSeconds:         max(0, o.KillUnresponsive).Seconds(),
	}
	// Routes (see Identity.Route) start at random; an upgraded master
	// continues its predecessor's (adoptUpgrader).
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
	m.o.Env = workerRuntimeEnv(m.o.Env, len(m.slots), runtime.GOMAXPROCS(0))
	return m, nil
}

// timeouts applies the defaults of ReadyTimeout and UpgradeTimeout.
func (o *Options) timeouts() {
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = o.ReadyTimeout + 10*time.Second
	}
}

// Watchdog defaults (Options).
const (
	DefaultWatchdogInterval    = time.Second
	DefaultUnresponsiveTimeout = 5 * time.Second
	DefaultKillUnresponsive    = 30 * time.Second
)

// opsDefaults applies the defaults of the watchdog's settings.
func (o *Options) opsDefaults() {
	if o.WatchdogInterval <= 0 {
		o.WatchdogInterval = DefaultWatchdogInterval
	}
	if o.UnresponsiveTimeout <= 0 {
		o.UnresponsiveTimeout = DefaultUnresponsiveTimeout
	}
	switch {
	case o.KillUnresponsive == 0:
		o.KillUnresponsive = DefaultKillUnresponsive
	case o.KillUnresponsive > 0:
		o.KillUnresponsive = max(o.KillUnresponsive, o.UnresponsiveTimeout)
	}
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
	if m.o.Upgrader != nil {
		if err := m.adoptUpgrader(); err != nil {
			return err
		}
	}
	if m.lockFile == nil {
		if m.lockFile, err = m.o.Paths.lock(); err != nil {
			return err
		}
	}
	defer m.lockFile.Close()
	if m.upg != nil {
		if err := m.upg.tf.AddFile(lockFileName, m.lockFile); err != nil {
			return fmt.Errorf("master: pass the lock on: %w", err)
		}
	}
	if err := m.initTicketKeys(); err != nil {
		return err
	}
	if err := m.listenControl(); err != nil {
		return err
	}
	defer m.closeControl()
	defer m.closeOrphans()
	if m.parentGone {
		// A cold start: the workers of a master that died may still
		// serve, holding the listening sockets.
		m.adoptOrphans()
	}
	defer m.closeAdmin()
	defer close(m.loopGone) // before closeAdmin: the admin requests in flight answer
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
		if err := m.spawn(s); err != nil {
			m.startErr = err
			m.beginStop(false)
			break
		}
	}
	startTimer := time.NewTimer(m.o.ReadyTimeout)
	defer startTimer.Stop()
	watchdog := time.NewTicker(m.o.WatchdogInterval)
	defer watchdog.Stop()
	rotate := time.NewTicker(m.o.TicketKeyRotation)
	defer rotate.Stop()

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
		case <-rotate.C:
			m.rotateTicketKeys()
		case <-watchdog.C:
			m.watch()
			m.watchOrphans()
			m.scanStrays()
		case e := <-m.events:
			m.handle(e)
		}
	}
	m.closeSockets(!m.upgraded)
	m.answering.Wait() // bounded: every answer has a deadline
	m.waitOutput()
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
		if err := m.reload(nil, 0, ipc.ReloadRequest{}); err != nil {
			m.log.Warn().Err(err).Msg("reload refused")
		}
	case syscall.SIGUSR1:
		m.reopen()
	}
}

func (m *master) handle(e event) {
	switch e := e.(type) {
	case evReady:
		m.onReady(e.p)
	case evExit:
		m.onExit(e.p, e.status)
	case evRespawn:
		s := e.s
		s.timer = nil
		if m.state == StateStopping || s.cur != nil || s.next != nil {
			return
		}
		if err := m.spawn(s); err != nil {
			m.log.Error().Err(err).Int("worker", s.id).Msg("worker respawn failed")
			m.scheduleRespawn(s)
		}
	case evKill:
		for p := range m.procs {
			m.log.Warn().Int("worker", p.slot.id).Int("worker_pid", p.pid).Msg("worker did not stop in time, killing")
			p.process.Kill()
		}
	case evRequest:
		m.onRequest(e.m, e.c)
	case evProgress:
		e.reply <- m.progress(e)
	case evParentExited:
		m.parentGone = true
		last, master := m.prev.take()
		m.inherited = append(m.inherited, last...)
		addMasterCounters(&m.inheritedMaster, master)
		m.figs.previousGone = time.Now()
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
	case evRecycle:
		m.onRecycle(e.p, e.req)
	case evOrphanGone:
		m.onOrphanGone(e)
	case evOrphanFinal:
		m.onOrphanFinal(e)
	case evStray:
		m.onStray(e)
	case evKillProc:
		if _, live := m.procs[e.p]; live {
			m.log.Warn().Int("worker", e.p.slot.id).Int("worker_pid", e.p.pid).Str("reason", e.why).Msg("killing worker")
			e.p.process.Kill()
		}
	}
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
