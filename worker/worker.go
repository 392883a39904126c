// Package worker is the worker process of goes: it serves one listener's
// connections with a connections.Server and obeys its master over a
// control channel (stats, connection listings, drain, stop).
//
// A worker ignores the signals a terminal sends to its process group
// (SIGINT, SIGHUP, SIGQUIT): it acts on its master's word only. When the
// control channel reaches EOF (the master is gone) it serves on as an
// orphan (Options.Orphan) until a new master adopts it or its orphan
// timeout passes, and then drains; without Options.Orphan it drains at
// once. SIGTERM drains too, bounded by the stop timeout.
package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/internal/ticketkeys"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/timer"
)

// States reported in WorkerStats.State.
const (
	StateRunning  = "running"
	StateDraining = "draining"
	StateStopping = "stopping"
	// StateOrphan: the master is gone; the worker serves on and waits for
	// a new master (Options.Orphan).
	StateOrphan = "orphan"
)

// Orphan lets a worker outlive its master (internal/orphan): once its
// control channel reaches EOF it serves on, and answers on Listener, where
// the next master of the run directory finds it, takes its listening
// socket (Socket) and tells it to drain once its own workers accept.
type Orphan struct {
	// Listener is the worker's own socket in the run directory, made by
	// its master (orphan.Listen); Run closes it and removes its file when
	// it returns.
	Listener *net.UnixListener
	// Timeout is how long the worker serves without a master before it
	// drains by itself (> 0).
	Timeout time.Duration
	// Info is what the worker tells a new master; Run fills in PID,
	// State, OrphanedAt and DrainAt.
	Info orphan.Info
	// Socket returns a duplicate of the listening socket, unwrapped (no
	// TLS), for a new master.
	Socket func() (*os.File, error)
}

// Options configure Run. Exactly one of Listener and PacketConn is set.
type Options struct {
	// ID is the worker's stable id among its master's workers.
	ID int
	// Ctl is the control channel to the master. Nil runs the worker
	// alone: it stops when the context is done.
	Ctl net.Conn
	// Listener is the shared stream listener (already wrapped for TLS).
	Listener net.Listener
	// PacketConn is the shared datagram socket.
	PacketConn net.PacketConn
	// Config is the connection runtime's configuration. Its Wheel is the
	// worker's clock: connection timeouts, the drain deadline and the
	// request-rate sampler run on it. When it is nil, Run makes one and
	// runs it until it returns; a wheel passed in must be running.
	Config connections.Config
	// StopTimeout bounds the drain that follows EOF on Ctl or SIGTERM
	// (default 30 s).
	StopTimeout time.Duration
	// OnStart runs before the worker accepts; an error ends the worker.
	OnStart func() error
	// OnReload runs when a drain is part of a reload.
	OnReload func()
	// OnStop runs once the worker has stopped serving.
	OnStop func()
	// Timers reports the number of live timers (nil: 0).
	Timers func() int
	// Cluster reports the worker's cluster Node (nil: none).
	Cluster func() *ipc.NodeStats
	// Reopen reopens the log files (nil: nothing to do).
	Reopen func() error
	// TicketKeys, when set, takes the TLS session ticket keys the master
	// pushes on rotation (ipc.TypeTicketKeys; TLSListener's setKeys).
	TicketKeys func(ticketkeys.Set)
	// TLSCounts, when set, are the TLS handshakes of the listener
	// (TLS.Counts), reported in the worker's figures.
	TLSCounts func() TLSCounts
	// Orphan, when set, makes the worker serve on when its master is gone
	// (EOF on Ctl), until a new master adopts it or Orphan.Timeout passes.
	Orphan *Orphan
	// MasterGone, when set, runs once the control channel has reached EOF
	// (the master is gone), before what follows (orphan or drain) is
	// logged: a worker whose output its master was copying writes to the
	// log file itself from then on.
	MasterGone func()
	// GoingAway, when set, runs for every connection still open when a
	// drain's timeout passes; a second later what is left is closed. It
	// lets a protocol say goodbye (WebSocket: close frame 1001).
	GoingAway func(c connections.Connection)
	// CloseOnDrain makes a drain close every connection at once instead
	// of letting them finish. It is unsafe (clients lose requests) and
	// exists as the negative control of the reload tests.
	CloseOnDrain bool
	// Version is reported in the ready event.
	Version string

	// Recycling. MaxRequests, when > 0, makes the worker ask its master
	// to replace it (ipc.TypeRecycle) once it has served about that many
	// requests (messages); MaxMemory, when > 0, once its resident memory
	// exceeds about that many bytes. "About": each worker draws its own
	// limits within ±RecycleJitter of the values, so that the workers of
	// a listener do not recycle together. The master starts the
	// replacement and tells this worker to drain once it accepts. The
	// requests are counted on their way to OnMessage (one atomic add per
	// message, only with MaxRequests), the memory read every second. A
	// worker without a control channel never recycles.
	MaxRequests uint64
	MaxMemory   uint64
	// Logger receives the worker's lifecycle events.
	Logger zerolog.Logger
}

// Run serves until the master says stop or drain (or Ctl reaches EOF, or
// ctx is done) and the drain has finished; then it runs OnStop and
// returns. It returns an error when the worker cannot serve.
func Run(ctx context.Context, o Options) error {
	if (o.Listener == nil) == (o.PacketConn == nil) {
		return errors.New("worker: exactly one of Listener and PacketConn must be set")
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	w := &worker{o: o, log: o.Logger}
	w.state.Store(StateRunning)
	return w.run(ctx)
}

type worker struct {
	o   Options
	log zerolog.Logger
	srv *connections.Server
	// durations times the OnMessage calls (measureMessages).
	durations durations
	wheel     *timer.Wheel
	state     atomic.Value // string
	qps       qpsMeter
	limits    *limits  // recycling; nil without
	prof      profiles // profiles taken for the master (profile.go)
}

func (w *worker) run(ctx context.Context) error {
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)

	if w.o.Config.Wheel == nil {
		wh := timer.New(timer.Options{Logger: w.log})
		wh.Start()
		defer wh.Stop()
		w.o.Config.Wheel = wh
	}
	w.wheel = w.o.Config.Wheel
	w.measureMessages()
	w.setLimits()
	w.srv = connections.NewServer(w.o.Config)
	if w.o.OnStart != nil {
		if err := w.o.OnStart(); err != nil {
			w.closeSockets()
			return fmt.Errorf("worker %d: start: %w", w.o.ID, err)
		}
	}
	serveErr := make(chan error, 1)
	go func() {
		if w.o.Listener != nil {
			serveErr <- w.srv.Serve(w.o.Listener)
		} else {
			serveErr <- w.srv.ServePacket(w.o.PacketConn)
		}
	}()

	var ctl *ipc.Conn
	msgs := make(chan ipc.Message)
	if w.o.Ctl != nil {
		ctl = ipc.NewConn(w.o.Ctl)
		defer w.o.Ctl.Close()
		go func() {
			defer close(msgs)
			for {
				m, err := ctl.Recv()
				if err != nil {
					w.log.Debug().Err(err).Msg("control channel closed")
					return
				}
				msgs <- m
			}
		}()
		hello, _ := ipc.New(ipc.TypeReady, 0, ipc.Hello{PID: os.Getpid(), Version: w.o.Version})
		if err := ctl.Send(hello); err != nil {
			w.srv.Close()
			return fmt.Errorf("worker %d: tell master ready: %w", w.o.ID, err)
		}
	}
	w.log.Info().Msg("worker started")

	stopLimits := w.watchLimits()
	defer stopLimits()
	var kick <-chan struct{}
	if w.limits != nil {
		kick = w.limits.kick
	}

	stopProfiles := make(chan struct{})
	defer close(stopProfiles)

	var drained chan struct{} // closed when a drain has finished
	drain := func(timeout time.Duration, reload bool) {
		if drained != nil {
			return
		}
		w.state.Store(StateDraining)
		w.log.Info().Dur("timeout_ms", timeout).Bool("reload", reload).Msg("worker draining")
		if reload && w.o.OnReload != nil {
			w.o.OnReload()
		}
		drained = make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			w.drainWait(timeout)
		}(drained)
	}
	last := &lastWord{ready: make(chan struct{})}
	finish := func() error {
		w.srv.Close()
		st := w.stats()
		if ctl != nil {
			// The last figures, for the master's counters (TypeFinal).
			if m, err := ipc.New(ipc.TypeFinal, 0, st); err == nil {
				ctl.Send(m)
			}
		}
		last.say(st, time.Second) // an orphan's, for its new master
		if w.o.OnStop != nil {
			w.o.OnStop()
		}
		w.log.Info().Msg("worker stopped")
		return nil
	}

	var (
		waitDrain    <-chan struct{}
		orphanDue    <-chan time.Time // the orphan timeout
		adoptDrain   = make(chan ipc.DrainRequest, 1)
		orphanStats  = make(chan chan ipc.WorkerStats)
		orphanedAt   time.Time
		orphanCancel func()
	)
	if o := w.o.Orphan; o != nil {
		defer func() {
			o.Listener.Close()
			os.Remove(o.Listener.Addr().String())
		}()
	}
	defer func() {
		if orphanCancel != nil {
			orphanCancel()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			drain(w.o.StopTimeout, false)
			waitDrain = drained
		case <-term:
			drain(w.o.StopTimeout, false)
			waitDrain = drained
		case err := <-serveErr:
			if !errors.Is(err, connections.ErrServerClosed) {
				w.srv.Close()
				return fmt.Errorf("worker %d: serve: %w", w.o.ID, err)
			}
			serveErr = nil
		case <-waitDrain:
			return finish()
		case <-kick:
			w.checkLimits(ctl)
		case <-orphanDue:
			orphanDue = nil
			w.log.Warn().Dur("orphaned_for_ms", time.Since(orphanedAt)).Msg("no new master adopted this orphan: draining")
			drain(w.o.StopTimeout, false)
			waitDrain = drained
		case req := <-adoptDrain:
			orphanDue = nil
			if orphanCancel != nil {
				orphanCancel()
			}
			timeout := req.Timeout
			if timeout <= 0 {
				timeout = w.o.StopTimeout
			}
			w.log.Info().Dur("orphaned_for_ms", time.Since(orphanedAt)).Msg("a new master serves: the orphan drains")
			drain(timeout, true)
			waitDrain = drained
		case ch := <-orphanStats:
			ch <- w.stats()
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				if w.o.MasterGone != nil {
					w.o.MasterGone()
				}
				if o := w.o.Orphan; o != nil && o.Timeout > 0 && drained == nil {
					// The master is gone: serve on until the next one
					// adopts this worker, or the orphan timeout.
					orphanedAt = time.Now()
					w.state.Store(StateOrphan)
					t := time.NewTimer(o.Timeout)
					orphanDue, orphanCancel = t.C, func() { t.Stop() }
					w.log.Warn().Dur("orphan_timeout_ms", o.Timeout).Str("socket", o.Listener.Addr().String()).
						Msg("master gone: serving on as an orphan until a new master adopts this worker")
					go orphan.Serve(o.Listener, &orphanHandler{w: w, at: orphanedAt, drain: adoptDrain, stats: orphanStats, last: last},
						func(msg string, err error) { w.log.Warn().Err(err).Msg(msg) })
					continue
				}
				// Finish what we have and leave.
				drain(w.o.StopTimeout, false)
				waitDrain = drained
				continue
			}
			switch m.Type {
			case ipc.TypeStop:
				w.state.Store(StateStopping)
				reply(ctl, m, nil, nil)
				return finish()
			case ipc.TypeDrain:
				var req ipc.DrainRequest
				if err := m.Decode(&req); err != nil {
					reply(ctl, m, nil, err)
					continue
				}
				reply(ctl, m, nil, nil)
				drain(req.Timeout, req.Reload)
				waitDrain = drained
			case ipc.TypeStats:
				reply(ctl, m, w.stats(), nil)
			case ipc.TypeConnections:
				reply(ctl, m, w.conns(), nil)
			case ipc.TypeProfile, ipc.TypeProfileRead:
				go w.prof.serve(ctl, m, stopProfiles)
			case ipc.TypeTicketKeys:
				var req ipc.TicketKeys
				err := m.Decode(&req)
				var keys ticketkeys.Set
				if err == nil {
					keys, err = ticketkeys.Decode(req.Keys)
				}
				if err == nil && w.o.TicketKeys != nil {
					w.o.TicketKeys(keys)
				}
				reply(ctl, m, nil, err)
			case ipc.TypeReopen:
				var err error
				if w.o.Reopen != nil {
					err = w.o.Reopen()
				}
				reply(ctl, m, nil, err)
			default:
				reply(ctl, m, nil, fmt.Errorf("worker: unknown request %q", m.Type))
			}
		}
	}
}

// orphanHandler answers a new master for an orphan (orphan.Serve).
type orphanHandler struct {
	w     *worker
	at    time.Time
	drain chan<- ipc.DrainRequest
	stats chan chan ipc.WorkerStats
	last  *lastWord
}

func (h *orphanHandler) Info() orphan.Info {
	o := h.w.o.Orphan
	in := o.Info
	in.Proto, in.PID = orphan.Proto, os.Getpid()
	in.State = h.w.state.Load().(string)
	in.OrphanedAt, in.DrainAt = h.at, h.at.Add(o.Timeout)
	return in
}

func (h *orphanHandler) Socket() (*os.File, error) { return h.w.o.Orphan.Socket() }

func (h *orphanHandler) Drain(req ipc.DrainRequest) error {
	select {
	case h.drain <- req:
	default: // one is on its way
	}
	return nil
}

func (h *orphanHandler) Stats() (ipc.WorkerStats, error) {
	ch := make(chan ipc.WorkerStats, 1)
	select {
	case h.stats <- ch:
		return <-ch, nil
	case <-time.After(2 * time.Second):
		return ipc.WorkerStats{}, errors.New("worker: busy")
	}
}

// drainWait stops accepting, waits until every connection is gone or
// timeout (0: none) has passed, and then closes what is left. At the
// timeout GoingAway gets a last second to say goodbye.
func (w *worker) drainWait(timeout time.Duration) {
	w.srv.Drain()
	if w.o.CloseOnDrain {
		w.srv.Close()
		return
	}
	// The deadline is a Timer on the worker's wheel; its callback only
	// signals this goroutine.
	due := make(chan struct{}, 1)
	var deadline timer.Timer
	fire := func() {
		select {
		case due <- struct{}{}:
		default:
		}
	}
	defer deadline.Stop()
	if timeout > 0 {
		w.wheel.Schedule(&deadline, timeout, fire)
	}
	saidGoodbye := false
	for {
		select {
		case <-w.srv.Done():
			w.srv.Close()
			return
		case <-due:
			if w.o.GoingAway != nil && !saidGoodbye {
				saidGoodbye = true
				w.srv.Each(w.o.GoingAway)
				deadline.Reset(time.Second)
				continue
			}
			w.log.Warn().Int64("connections", w.srv.Stats().Connections).Msg("drain timed out, connections closed")
			w.srv.Close()
			return
		}
	}
}

// closeSockets closes the shared sockets when the worker never served.
func (w *worker) closeSockets() {
	if w.o.Listener != nil {
		w.o.Listener.Close()
	}
	if w.o.PacketConn != nil {
		w.o.PacketConn.Close()
	}
}

func reply(ctl *ipc.Conn, req ipc.Message, body any, err error) {
	if req.ID == 0 {
		return
	}
	m := ipc.Message{Type: ipc.TypeOK, ID: req.ID}
	if err == nil && body != nil {
		m, err = ipc.New(ipc.TypeOK, req.ID, body)
	}
	if err != nil {
		m = ipc.Message{Type: ipc.TypeError, ID: req.ID, Error: err.Error()}
	}
	ctl.Send(m) // a send error shows as EOF on the reading side
}

func (w *worker) stats() ipc.WorkerStats {
	st := w.srv.Stats()
	timers := 0
	if w.o.Timers != nil {
		timers = w.o.Timers()
	}
	var cl *ipc.NodeStats
	if w.o.Cluster != nil {
		cl = w.o.Cluster()
	}
	load := ipc.Load{
		QPS:         w.qps.rate(st.Requests, time.Now()),
		MemoryBytes: memoryBytes(),
		Timers:      timers,
		Cluster:     cl,
		CPUSeconds:  cpuSeconds(),
		Goroutines:  runtime.NumGoroutine(),

		RequestDuration: w.durations.histogram(),
	}
	load.CopyStats(st) // every connections.Stats figure, by name (ipc/stats.go)
	load.LoopLag = loopLag(w.srv.LoopLag())
	if w.o.TLSCounts != nil {
		c := w.o.TLSCounts()
		load.TLSHandshakes = map[string]uint64{ipc.TLSHandshakeOK: c.OK, ipc.TLSHandshakeFailed: c.Failed}
		load.TLSResumed = c.Resumed
		load.TLSConnections += c.Open // the standard engine's (the loops' came in Stats)
		load.TLSHandshakeDuration = c.Duration
	}
	return ipc.WorkerStats{PID: os.Getpid(), State: w.state.Load().(string), Load: load}
}

func (w *worker) conns() []ipc.ConnInfo {
	now := time.Now()
	list := w.srv.Connections()
	out := make([]ipc.ConnInfo, 0, len(list))
	for _, c := range list {
		out = append(out, ipc.ConnInfo{
			Worker:     w.o.ID,
			PID:        os.Getpid(),
			ID:         c.ID,
			Transport:  c.Transport,
			Protocol:   c.Protocol,
			LocalAddr:  c.LocalAddr,
			RemoteAddr: c.RemoteAddr,
			BytesIn:    c.BytesIn,
			BytesOut:   c.BytesOut,
			SendBuffer: c.SendBuffer,
			CreatedAt:  c.CreatedAt,
			AgeSeconds: now.Sub(c.CreatedAt).Seconds(),
			State:      c.State,
		})
	}
	return out
}

// qpsMeter is the rate of requests between two stats answers (the
// master asks every watchdog_interval), worked out when asked rather than
// sampled on a timer: no wake-up of an idle worker is spent on it.
type qpsMeter struct {
	mu   sync.Mutex
	last uint64    // requests at at
	at   time.Time // the last sample; zero: none yet
	qps  float64
}

// rate returns the requests per second from the last sample at least
// half a second old to now (n requests), and makes now the next sample;
// asked sooner, it returns the last rate.
func (q *qpsMeter) rate(n uint64, now time.Time) float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.at.IsZero() {
		q.last, q.at = n, now
		return 0
	}
	if d := now.Sub(q.at); d >= time.Second/2 {
		q.qps = float64(n-q.last) / d.Seconds()
		q.last, q.at = n, now
	}
	return q.qps
}
