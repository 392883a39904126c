//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/ipc"
)

// The admin endpoint (Options.Admin) is an HTTP server in the master for
// machines: Prometheus metrics, health and readiness probes, and profiles
// of the master and of every worker, which open no port of their own:
//
//	/metrics                     Prometheus text format (see metrics.go)
//	/healthz                     200 while the master's run loop answers
//	/readyz                      200 while every listener has a worker running
//	/debug/pprof/                net/http/pprof, of the master
//	/debug/pprof/NAME?worker=ID  the same of worker ID, over its control channel
//
// With Options.AdminToken, every path but /healthz and /readyz asks for
// Authorization: Bearer TOKEN (401 without it, compared in constant
// time). Admin may name a Unix socket instead of host:port
// ("unix:///run/goes/admin.sock"): it is made owner-only, and a client
// of another uid than the master's (root aside) is refused, as on the
// control socket. Without either, bind it to loopback (the default of
// goes-master) or to an address only operators reach.
//
// The handlers run on the HTTP server's goroutines and reach the master
// only as the control socket's clients do: a request handed to the run
// loop (ask), answered in frames. So /metrics and /readyz read exactly
// what the status command reads, and a scrape costs the workers one stats
// request each, nothing on their request path. Like status, they never
// wait on a hung worker: each is asked within a short bound (see
// gatherStatus), and one that does not answer in time is shown with the
// figures of its last answer; the watchdog's verdict (unresponsive)
// shows as goes_worker_up 0 with the worker's silence, and /readyz does
// not count it as running.

// admin is the admin endpoint's server. Owner: the run loop, but for
// handedOver.
type admin struct {
	ln      net.Listener
	srv     *http.Server
	addr    string // the address ln is bound to
	serving bool   // srv.Serve runs
	closed  bool
	// handedOver is set (any goroutine reads it) once a newer master
	// serves: this one's answers in flight then speak for that one.
	handedOver atomic.Bool
	// open counts the connections the server has accepted and not yet
	// closed (its ConnState hook); drained is closed once it reaches 0
	// after the hand-over.
	open    atomic.Int64
	drained chan struct{}
}

// The admin endpoint's bounds. It holds at most
// Options.AdminMaxConnections connections (default
// DefaultAdminMaxConnections) and closes one more at once, so that no
// flood of connections, from any local user, takes the master's
// descriptors (its control socket needs some); and each request is
// bounded, so that a slow client gives its place back.
const (
	// adminReadHeaderTimeout bounds a connection that sends no request,
	// and the reading of a request's header.
	adminReadHeaderTimeout = 5 * time.Second
	// adminReadTimeout bounds the reading of a whole request, body
	// included (the admin's requests have none, or a small one).
	adminReadTimeout = 10 * time.Second
	// adminWriteTimeout bounds a response, from the end of its request;
	// a profile or trace of seconds=N gets N more (adminTimeouts).
	adminWriteTimeout = 30 * time.Second
	// adminIdleTimeout closes a kept-alive connection idle this long.
	adminIdleTimeout = 30 * time.Second
	// adminMaxHeaderBytes caps a request's header.
	adminMaxHeaderBytes = 16 << 10
	// adminMaxProfile caps seconds=N of a profile or trace.
	adminMaxProfile = 10 * time.Minute
)

// openAdmin opens the admin socket when Options.Admin asks for one:
// through the upgrader when there is one, so that a reload hands it to
// the new master. A master started by a reload serves on it only once it
// serves itself (adminReady); until then its predecessor answers there.
func (m *master) openAdmin() error {
	if m.o.Admin == "" {
		return nil
	}
	var (
		ln  net.Listener
		err error
	)
	network, addr := adminNetwork(m.o.Admin)
	listen := func(network, addr string) (net.Listener, error) {
		if network == "unix" {
			return listenAdminUnix(addr)
		}
		return net.Listen(network, addr)
	}
	if m.upg != nil {
		var lerr error
		// The key names the admin socket among those a master hands to
		// its successor; a new address (a new config) is a new socket.
		ln, err = m.upg.tf.ListenWithCallback(network, "goes-admin "+m.o.Admin, func(network, _ string) (net.Listener, error) {
			ln, err := listen(network, addr)
			lerr = err
			return ln, err
		})
		if lerr != nil {
			err = lerr
		}
	} else {
		ln, err = listen(network, addr)
	}
	if err != nil {
		return fmt.Errorf("master: admin endpoint: %w", err)
	}
	if network == "unix" {
		ln = peerListener{ln}
	}
	mux, err := m.adminMux()
	if err != nil {
		ln.Close()
		return err
	}
	errLog := log.New(logWriter{m.log}, "", 0)
	max := int64(m.o.AdminMaxConnections)
	if max == 0 {
		max = DefaultAdminMaxConnections
	}
	capped := &capListener{Listener: ln, max: max, bo: acceptBackoff{log: m.log, what: "admin endpoint"}}
	a := &admin{ln: capped, addr: ln.Addr().String()}
	a.srv = &http.Server{
		Handler:           adminTimeouts(adminAuth(m.o.AdminToken, mux)),
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ErrorLog:          errLog,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				a.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				a.open.Add(-1)
			}
		},
	}
	m.adm = a
	m.log.Info().Str("admin", m.adm.addr).Msg("admin endpoint open")
	if !m.upg.HasParent() {
		m.serveAdmin()
	}
	return nil
}

func (m *master) serveAdmin() {
	a := m.adm
	if a == nil || a.serving || a.closed {
		return
	}
	a.serving = true
	go func() {
		if err := a.srv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) && !a.handedOver.Load() {
			m.log.Error().Err(err).Msg("admin endpoint stopped")
		}
	}()
}

// adminReady runs when this master serves (all its workers accept): a
// master started by a reload takes the admin endpoint over now.
func (m *master) adminReady() {
	if m.figs.readyAt.IsZero() {
		m.figs.readyAt = time.Now()
	}
	m.serveAdmin()
}

// handAdminOver stops taking admin requests once a newer master serves
// (the socket stays open in that master); those in flight finish.
func (m *master) handAdminOver() {
	a := m.adm
	if a == nil || a.closed {
		return
	}
	a.handedOver.Store(true)
	if !a.serving {
		m.closeAdmin()
		return
	}
	// Not Shutdown: a server that shuts down drops, unanswered, a request
	// it reads afterwards on a connection it had accepted before (net/http
	// checks after reading each request): a client that connected just
	// before the hand-over would read EOF (TestAdminAcrossReload, about
	// one run in six under load). The listener closes here, so this master
	// accepts no more, answers what it accepted (without keep-alive), and
	// Close waits for that in closeAdmin.
	a.srv.SetKeepAlivesEnabled(false)
	a.ln.Close()
	a.drained = make(chan struct{})
	go func() {
		defer close(a.drained)
		deadline := time.Now().Add(adminDrainWait)
		for a.open.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polls a counter: bounded, a few ms per reload
		}
	}()
}

// closeAdmin closes the admin endpoint when the master returns.
func (m *master) closeAdmin() {
	a := m.adm
	if a == nil || a.closed {
		return
	}
	a.closed = true
	// Requests in flight answer without the run loop, which is gone
	// (loopGone; a handed-over master's /readyz: ready, a newer master
	// serves), before the endpoint closes.
	if a.drained != nil {
		<-a.drained
	}
	if a.serving {
		a.srv.Close()
	} else {
		a.ln.Close()
	}
}

// logWriter passes the HTTP server's and promhttp's complaints to the
// master's log.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("error", strings.TrimSpace(string(p))).Msg("admin endpoint error")
	return len(p), nil
}

func (m *master) adminMux() (*http.ServeMux, error) {
	col, err := newCollector(func(ctx context.Context) (ipc.Status, error) { return m.localStatus(ctx, true) })
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		col,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("master: metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "goes master admin endpoint\n\n"+
			"/metrics                       Prometheus metrics\n"+
			"/healthz                       200 while the master runs\n"+
			"/readyz                        200 while every listener has a worker running\n"+
			"/debug/pprof/                  profiles of the master\n"+
			"/debug/pprof/?worker=ID        profiles of a worker\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: log.New(logWriter{m.log}, "", 0)}))
	mux.HandleFunc("GET /healthz", m.healthz)
	mux.HandleFunc("GET /readyz", m.readyz)
	mux.HandleFunc("/debug/pprof/", m.pprofWorkerOr(pprof.Index))
	mux.HandleFunc("/debug/pprof/cmdline", m.pprofWorkerOr(pprof.Cmdline))
	mux.HandleFunc("/debug/pprof/profile", m.pprofWorkerOr(pprof.Profile))
	mux.HandleFunc("/debug/pprof/symbol", m.pprofWorkerOr(pprof.Symbol))
	mux.HandleFunc("/debug/pprof/trace", m.pprofWorkerOr(pprof.Trace))
	return mux, nil
}

var errMasterGone = errors.New("master: stopped")

// ask hands req to the run loop as a request of the control socket and
// passes each answer frame to each until each returns false. An error
// answer is returned as an error. Safe for concurrent use.
func (m *master) ask(ctx context.Context, req ipc.Message, each func(ipc.Message) (bool, error)) error {
	mine, theirs := net.Pipe()
	defer mine.Close()
	select {
	case m.events <- evRequest{m: req, c: theirs}:
	case <-m.loopGone:
		theirs.Close()
		return errMasterGone
	case <-ctx.Done():
		theirs.Close()
		return ctx.Err()
	}
	stop := context.AfterFunc(ctx, func() { mine.Close() })
	defer stop()
	in := ipc.NewConn(mine)
	for {
		msg, err := in.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("master: %s: %w", req.Type, err)
		}
		if msg.Type == ipc.TypeError {
			return errors.New(msg.Error)
		}
		more, err := each(msg)
		if err != nil || !more {
			return err
		}
	}
}

// localStatus is the status of this master and its workers, as the
// status command reads it (without the other masters of the run
// directory: each master serves its own admin endpoint); with totals,
// the previous generation's too (the metrics': they fail while those
// are not known, readiness does not depend on them).
func (m *master) localStatus(ctx context.Context, totals bool) (ipc.Status, error) {
	req, err := ipc.New(ipc.TypeStatus, 1, ipc.StatusRequest{Local: true, Totals: totals})
	if err != nil {
		return ipc.Status{}, err
	}
	var st ipc.Status
	err = m.ask(ctx, req, func(ans ipc.Message) (bool, error) { return false, ans.Decode(&st) })
	return st, err
}

// healthz answers 200 while the master's run loop answers a ping.
func (m *master) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var h ipc.Hello
	err := m.ask(ctx, ipc.Message{Type: ipc.TypePing, ID: 1}, func(ans ipc.Message) (bool, error) { return false, ans.Decode(&h) })
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unhealthy: %v\n", err)
		return
	}
	fmt.Fprintf(w, "ok: master pid %d, version %s\n", h.PID, h.Version)
}

// readyz answers 200 while the master runs (it is not starting, nor
// stopping or draining) and every listener has at least one worker
// running (an unresponsive one is not); 503 otherwise. The body says
// why, listener by listener.
func (m *master) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := m.localStatus(ctx, false)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil && m.adm.handedOver.Load() {
		// This master is gone, handed over to a newer one, which this
		// request would have reached a moment later.
		fmt.Fprintf(w, "ready: a newer master serves (this one: %v)\n", err)
		return
	}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	ready, report := readiness(st)
	if !ready && m.adm.handedOver.Load() {
		// This master stops because a newer one serves, which this
		// request would have reached a moment later.
		ready, report = true, "ready: a newer master serves\n"+report
	}
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	io.WriteString(w, report)
}

// readiness says whether st serves, and why in a few lines.
func readiness(st ipc.Status) (bool, string) {
	type tally struct {
		name           string
		running, total int
	}
	var order []string
	byListen := map[string]*tally{}
	for _, w := range st.Workers {
		t := byListen[w.Listen]
		if t == nil {
			t = &tally{name: w.Name}
			byListen[w.Listen] = t
			order = append(order, w.Listen)
		}
		t.total++
		if w.State == StateRunning {
			t.running++
		}
	}
	ready := st.Master.State == StateRunning
	var b strings.Builder
	fmt.Fprintf(&b, "master %s\n", st.Master.State)
	for _, l := range order {
		t := byListen[l]
		fmt.Fprintf(&b, "listener %s (%s): %d of %d workers running\n", t.name, l, t.running, t.total)
		if t.running == 0 {
			ready = false
		}
	}
	if ready {
		return true, "ready\n" + b.String()
	}
	return false, "not ready\n" + b.String()
}

// pprofWorkerOr serves h (net/http/pprof, of the master) unless the
// request names a worker (?worker=ID): then the worker's profile,
// fetched over its control channel.
func (m *master) pprofWorkerOr(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ws := r.FormValue("worker")
		if ws == "" {
			h(w, r)
			return
		}
		id, err := strconv.Atoi(ws)
		if err != nil || id < 0 {
			pprofError(w, http.StatusBadRequest, fmt.Sprintf("worker: want an id, got %q", ws))
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
		switch name {
		case "":
			workerIndex(w, id)
		case "cmdline", "symbol":
			pprofError(w, http.StatusNotFound, name+" is served for the master only: a worker runs the same binary with the same arguments")
		default:
			m.workerProfile(w, r, id, name)
		}
	}
}

// workerProfiles are the profiles a worker serves, with what they show.
var workerProfiles = []struct{ name, about string }{
	{"allocs", "A sampling of all past memory allocations."},
	{"block", "Stack traces that led to blocking on synchronization primitives (empty unless the program sets runtime.SetBlockProfileRate)."},
	{"goroutine", "Stack traces of all current goroutines (debug=2: in the format of a panic)."},
	{"heap", "A sampling of the memory allocations of live objects (gc=1: after a garbage collection)."},
	{"mutex", "Stack traces of holders of contended mutexes (empty unless the program sets runtime.SetMutexProfileFraction)."},
	{"profile", "CPU profile, for seconds=N (default 30)."},
	{"threadcreate", "Stack traces that led to the creation of new OS threads."},
	{"trace", "An execution trace (runtime/trace), for seconds=N (default 1)."},
}

func workerIndex(w http.ResponseWriter, id int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<html><head><title>worker %d: /debug/pprof/</title></head><body>\n<p>Profiles of worker %d, fetched over its control channel:</p>\n<ul>\n", id, id)
	for _, p := range workerProfiles {
		fmt.Fprintf(w, "<li><a href=\"%s?worker=%d&amp;debug=1\">%s</a>: %s</li>\n", p.name, id, p.name, html.EscapeString(p.about))
	}
	io.WriteString(w, "</ul>\n<p>For go tool pprof: <code>go tool pprof http://HOST/debug/pprof/profile?worker=ID&amp;seconds=5</code>.</p>\n</body></html>\n")
}

// workerProfile streams profile name of worker id to w.
func (m *master) workerProfile(w http.ResponseWriter, r *http.Request, id int, name string) {
	req := ipc.ProfileRequest{Worker: id, Name: name}
	if s := r.FormValue("seconds"); s != "" {
		sec, err := strconv.ParseFloat(s, 64)
		if err != nil || sec <= 0 {
			pprofError(w, http.StatusBadRequest, fmt.Sprintf("seconds: want a positive number, got %q", s))
			return
		}
		if name != "profile" && name != "trace" {
			pprofError(w, http.StatusBadRequest, "seconds: only profile and trace of a worker take a duration (no delta profiles)")
			return
		}
		req.Duration = time.Duration(sec * float64(time.Second))
	}
	if s := r.FormValue("debug"); s != "" {
		d, err := strconv.Atoi(s)
		if err != nil {
			pprofError(w, http.StatusBadRequest, fmt.Sprintf("debug: want a number, got %q", s))
			return
		}
		req.Debug = d
	}
	gc, _ := strconv.Atoi(r.FormValue("gc"))
	req.GC = gc > 0
	msg, err := ipc.New(ipc.TypeProfile, 1, req)
	if err != nil {
		pprofError(w, http.StatusInternalServerError, err.Error())
		return
	}
	wrote := false
	err = m.ask(r.Context(), msg, func(ans ipc.Message) (bool, error) {
		var ch ipc.ProfileChunk
		if err := ans.Decode(&ch); err != nil {
			return false, err
		}
		if !wrote {
			wrote = true
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Content-Length", strconv.Itoa(ch.Total))
			if req.Debug != 0 && name != "profile" && name != "trace" {
				h.Set("Content-Type", "text/plain; charset=utf-8")
			} else {
				h.Set("Content-Type", "application/octet-stream")
				h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=\"worker-%d-%s\"", id, name))
			}
		}
		_, err := w.Write(ch.Data)
		return ch.More, err
	})
	switch {
	case err == nil:
	case !wrote && strings.HasPrefix(err.Error(), errNoWorkerPrefix):
		pprofError(w, http.StatusNotFound, err.Error())
	case !wrote:
		pprofError(w, http.StatusInternalServerError, err.Error())
	default:
		// Part of the profile is out: end the response short of its
		// Content-Length, so that the client sees the failure.
		m.log.Warn().Err(err).Int("worker", id).Str("profile", name).Msg("worker profile cut short")
		panic(http.ErrAbortHandler)
	}
}

func pprofError(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Go-Pprof", "1")
	h.Del("Content-Disposition")
	w.WriteHeader(status)
	fmt.Fprintln(w, text)
}

// figures are the master's own counts shown in MasterStatus (and so in
// metrics). Owner: the run loop.
type figures struct {
	exits        map[string]int // unexpected worker exits by process state
	restarts     int            // workers started again after one
	readyAt      time.Time      // when this master first served
	previousGone time.Time      // when the previous generation was gone
}

// exited counts an unexpected exit that ended as status says.
func (f *figures) exited(status string) {
	if f.exits == nil {
		f.exits = make(map[string]int)
	}
	f.exits[status]++
}

// fillFigures copies the figures into ms (a snapshot for other goroutines).
func (m *master) fillFigures(ms *ipc.MasterStatus) {
	f := &m.figs
	if len(f.exits) > 0 {
		ms.Exits = make(map[string]int, len(f.exits))
		for k, v := range f.exits {
			ms.Exits[k] = v
		}
	}
	ms.Restarts = f.restarts
	if m.upg.HasParent() && !f.readyAt.IsZero() {
		ms.ReloadSeconds = f.readyAt.Sub(m.started).Seconds()
		if !f.previousGone.IsZero() {
			ms.DrainSeconds = max(0, f.previousGone.Sub(f.readyAt).Seconds())
		}
	}
	if m.adm != nil {
		ms.Admin = m.adm.addr
	}
}
