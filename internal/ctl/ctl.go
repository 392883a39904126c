//go:build unix

// Package ctl is the command line of a goes program: the verb table and
// its flags (app_unix.go, Program), the master's start-up for start
// (master_unix.go), the check verb (check_unix.go), and the verbs that
// talk to a running master over its control socket (this file: stop,
// reload's request, status, connections, and the printing of their
// answers). It needs no Goer: the root package's Runner gives it the
// config (Program.Load) and what the master of a config serves
// (Program.Plan, the Goers built and checked).
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/goes-project/goes/internal/orphan"
	"github.com/goes-project/goes/ipc"
	"github.com/goes-project/goes/master"
)

// CLI is the program's name and where a verb prints.
type CLI struct {
	Name           string
	Stdout, Stderr io.Writer
}

// Ping asks the master behind paths who it is.
func Ping(paths master.Paths) (ipc.Hello, error) {
	ans, err := paths.Request(ipc.Message{Type: ipc.TypePing}, 2*time.Second)
	if err != nil {
		return ipc.Hello{}, err
	}
	var h ipc.Hello
	err = ans.Decode(&h)
	return h, err
}

// NotRunning explains why no master answers, naming a stale pid file and
// the orphans of a master that died.
func NotRunning(paths master.Paths) error {
	more := orphansLine(paths.Dir)
	if pid, err := paths.ReadPID(); err == nil {
		return fmt.Errorf("%w (run dir %s; stale pid file names pid %d)%s", ErrNotRunning, paths.Dir, pid, more)
	}
	return fmt.Errorf("%w (run dir %s)%s", ErrNotRunning, paths.Dir, more)
}

// orphansLine says which orphans of a dead master serve in run directory
// dir ("" when none answers), asking each briefly.
func orphansLine(dir string) string {
	var pids []string
	var drainAt time.Time
	for _, path := range orphan.Glob(dir) {
		c, err := orphan.Dial(path, 500*time.Millisecond)
		if err != nil {
			continue
		}
		c.Close()
		pids = append(pids, strconv.Itoa(c.Info.PID))
		if drainAt.IsZero() || c.Info.DrainAt.Before(drainAt) {
			drainAt = c.Info.DrainAt
		}
	}
	if len(pids) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d orphaned workers of a master that died serve on (pids %s) until a start adopts them, "+
		"or they drain from %s", len(pids), strings.Join(pids, " "), drainAt.Local().Format(time.TimeOnly))
}

// Stop stops the master behind paths (graceful: its connections finish)
// and waits until it is gone; a master that is not running is an error
// unless quietIfStopped. bound is the --timeout.
func (r CLI) Stop(paths master.Paths, graceful, quietIfStopped bool, bound time.Duration) error {
	ctl, conn, err := paths.Dial(bound)
	if err != nil {
		if errors.Is(err, master.ErrNotRunning) {
			if quietIfStopped {
				return nil
			}
			return NotRunning(paths)
		}
		return r.noAnswer("stop", paths, bound, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(bound))
	req, _ := ipc.New(ipc.TypeStop, 1, ipc.StopRequest{Graceful: graceful, Progress: true})
	if err := ctl.Send(req); err != nil {
		return r.noAnswer("stop", paths, bound, err)
	}
	ans, err := ctl.Recv()
	if err != nil {
		return r.noAnswer("stop", paths, bound, err)
	}
	if ans.Type == ipc.TypeError {
		return fmt.Errorf("goes: stop: %s", ans.Error)
	}
	var h ipc.Hello
	ans.Decode(&h)
	how := "stopping"
	if graceful {
		how = "stopping gracefully"
	}
	fmt.Fprintf(r.Stdout, "%s %s (pid %d)\n", r.Name, how, h.PID)
	// The master closes the connection when it is done; until then it
	// reports its progress every second (h.Progress; a master of an older
	// version is silent and bounds its stop itself).
	w := r.waiter("stop", h, paths, bound)
	for {
		if _, err := w.next(ctl, conn); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for paths.Locked() {
		if time.Now().After(deadline) {
			return fmt.Errorf("goes: stop: master (pid %d) still holds %s", h.PID, paths.Lock)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(r.Stdout, "%s stopped\n", r.Name)
	return nil
}

// legacyWait bounds the wait for a stop or reload of a master that sends
// no progress (an older version): it bounds them itself.
const legacyWait = 10 * time.Minute

// progressPrintEvery is how often a stop or reload that waits prints how
// it goes.
const progressPrintEvery = 3 * time.Second

// controlPID is the pid of the master behind paths' control socket, as
// the socket's name (goes-PID.sock, the link's target) or else the pid
// file says; 0 when neither does.
func controlPID(paths master.Paths) int {
	if target, err := os.Readlink(paths.Socket); err == nil {
		name := filepath.Base(target)
		if s, ok := strings.CutPrefix(name, "goes-"); ok {
			if pid, err := strconv.Atoi(strings.TrimSuffix(s, ".sock")); err == nil {
				return pid
			}
		}
	}
	if pid, err := paths.ReadPID(); err == nil {
		return pid
	}
	return 0
}

// noAnswer is the error of a request the master did not answer in time
// (err a timeout; any other err is returned wrapped as it is).
func (r CLI) noAnswer(verb string, paths master.Paths, bound time.Duration, err error) error {
	if !isTimeout(err) {
		return fmt.Errorf("goes: %s: %w", verb, err)
	}
	if pid := controlPID(paths); pid > 0 {
		return fmt.Errorf("goes: %s: master pid %d did not answer within %v (is it stopped? kill -CONT %d, or kill it): %w", verb, pid, bound, pid, err)
	}
	return fmt.Errorf("goes: %s: the master of %s did not answer within %v: %w", verb, paths.Dir, bound, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// request sends msg to the master and returns its answer, within bound.
func (r CLI) request(verb string, paths master.Paths, msg ipc.Message, bound time.Duration) (ipc.Message, error) {
	ans, err := paths.Request(msg, bound)
	switch {
	case err == nil:
		return ans, nil
	case errors.Is(err, master.ErrNotRunning):
		return ans, NotRunning(paths)
	case ans.Type == ipc.TypeError:
		return ans, fmt.Errorf("goes: %w", err)
	}
	return ans, r.noAnswer(verb, paths, bound, err)
}

// progressWaiter reads the frames of a stop or reload that waits: the
// master's progress reports, each within bound of the last (printed every
// progressPrintEvery), until the answer; or, from a master that sends
// none, the answer within legacyWait.
type progressWaiter struct {
	r       CLI
	verb    string
	h       ipc.Hello
	paths   master.Paths
	bound   time.Duration
	began   time.Time
	printed time.Time
	last    time.Time // the last frame
}

func (r CLI) waiter(verb string, h ipc.Hello, paths master.Paths, bound time.Duration) *progressWaiter {
	now := time.Now()
	return &progressWaiter{r: r, verb: verb, h: h, paths: paths, bound: bound, began: now, printed: now, last: now}
}

// next returns the next frame that is not a progress report (io.EOF when
// the master closed the connection).
func (w *progressWaiter) next(ctl *ipc.Conn, conn net.Conn) (ipc.Message, error) {
	for {
		if w.h.Progress {
			conn.SetReadDeadline(w.last.Add(w.bound))
		} else {
			conn.SetReadDeadline(w.began.Add(legacyWait))
		}
		msg, err := ctl.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return msg, io.EOF
		case isTimeout(err) && w.h.Progress:
			return msg, fmt.Errorf("goes: %s: master pid %d stopped answering after %v (no word for %v; is it stopped? kill -CONT %d, or kill it): %w",
				w.verb, w.h.PID, time.Since(w.began).Round(time.Second), w.bound, w.h.PID, err)
		case isTimeout(err):
			return msg, fmt.Errorf("goes: %s: master pid %d (%s) not done after %v: %w", w.verb, w.h.PID, w.h.Version, legacyWait, err)
		case err != nil:
			return msg, fmt.Errorf("goes: %s: %w", w.verb, err)
		}
		w.last = time.Now()
		if msg.Type != ipc.TypeProgress {
			return msg, nil
		}
		var p ipc.Progress
		if msg.Decode(&p) == nil && time.Since(w.printed) >= progressPrintEvery {
			w.printed = time.Now()
			since := time.Since(w.began).Round(time.Second)
			if w.verb == "reload" {
				note := p.Note
				if note == "" {
					note = "the new master is taking over"
				}
				fmt.Fprintf(w.r.Stderr, "%s reload: master pid %d waits: %s (%v so far)\n", w.r.Name, p.PID, note, since)
				continue
			}
			fmt.Fprintf(w.r.Stderr, "%s %s: master pid %d %s, %d workers and %d connections left after %v\n",
				w.r.Name, w.verb, p.PID, p.State, p.Workers, p.Connections, since)
		}
	}
}

// Reload asks the master behind paths to upgrade to the binary now on
// disk (graceful: old connections finish without a time bound; config,
// when not "": the new generation runs that file, which the caller has
// checked) and waits until the new generation serves.
func (r CLI) Reload(paths master.Paths, graceful bool, config string, bound time.Duration) error {
	// The master answers once the new generation serves (or failed to):
	// a ping first learns whether it reports its progress meanwhile.
	hello, err := r.request("reload", paths, ipc.Message{Type: ipc.TypePing}, bound)
	if err != nil {
		return err
	}
	var h ipc.Hello
	if err := hello.Decode(&h); err != nil {
		return fmt.Errorf("goes: reload: %w", err)
	}
	rr := ipc.ReloadRequest{Graceful: graceful, Progress: h.Progress, Config: config}
	req, _ := ipc.New(ipc.TypeReload, 1, rr)
	ctl, conn, err := paths.Dial(bound)
	if err != nil {
		if errors.Is(err, master.ErrNotRunning) {
			return NotRunning(paths)
		}
		return r.noAnswer("reload", paths, bound, err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(bound))
	if err := ctl.Send(req); err != nil {
		return r.noAnswer("reload", paths, bound, err)
	}
	ans, err := r.waiter("reload", h, paths, bound).next(ctl, conn)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("goes: reload: master pid %d closed the connection without an answer", h.PID)
	}
	if err != nil {
		return err
	}
	if ans.Type == ipc.TypeError {
		return fmt.Errorf("goes: master: reload: %s", ans.Error)
	}
	var res ipc.ReloadResult
	if err := ans.Decode(&res); err != nil {
		return err
	}
	if res.OldPID != 0 {
		fmt.Fprintf(r.Stdout, "%s reloaded: master pid %d, version %s, generation %d serves; old master pid %d drains %d workers\n",
			r.Name, res.PID, res.Version, res.Generation, res.OldPID, res.Drained)
	} else {
		fmt.Fprintf(r.Stdout, "%s reloaded: master pid %d, version %s, generation %d serves; %d old workers drain\n",
			r.Name, res.PID, res.Version, res.Generation, res.Drained)
	}
	return nil
}

// Status prints the master's status (asJSON: as JSON; refresh: every
// second until Ctrl-C).
func (r CLI) Status(paths master.Paths, asJSON, refresh bool, bound time.Duration) error {
	get := func() (ipc.Status, error) {
		var st ipc.Status
		ans, err := r.request("status", paths, ipc.Message{Type: ipc.TypeStatus}, bound)
		if err != nil {
			return st, err
		}
		err = ans.Decode(&st)
		return st, err
	}
	show := func(st ipc.Status) error {
		if asJSON {
			enc := json.NewEncoder(r.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		PrintStatus(r.Stdout, r.Name, st)
		return nil
	}
	st, err := get()
	if err != nil {
		return err
	}
	if !refresh {
		return show(st)
	}
	// -d: a frame every second until Ctrl-C, on a cleared terminal (a
	// pipe gets the frames one after the other). A master that goes away
	// (restart) is reported and waited for.
	clear := false
	if f, ok := r.Stdout.(*os.File); ok && !asJSON {
		clear = IsTerminal(int(f.Fd()))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if clear {
			fmt.Fprint(r.Stdout, "\033[H\033[2J")
		}
		if err != nil {
			fmt.Fprintf(r.Stdout, "%s: %v (%s); refreshing every second, Ctrl-C stops\n", time.Now().Format(time.TimeOnly), err, r.Name)
		} else if err := show(st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st, err = get()
	}
}

// PrintStatus writes st as the status verb shows it.
func PrintStatus(w io.Writer, name string, st ipc.Status) {
	m := st.Master
	fmt.Fprintf(w, "-------------------------------- %s --------------------------------\n", strings.ToUpper(name))
	fmt.Fprintf(w, "version: %s   go: %s   master pid: %d   state: %s   generation: %d\n", m.Version, runtime.Version(), m.PID, m.State, m.Generation)
	fmt.Fprintf(w, "started: %s   uptime: %s   workers: %d   worker exits: %d\n",
		m.StartedAt.Format(time.DateTime), (time.Duration(m.UptimeSeconds) * time.Second).String(), m.Workers, m.ExitCount)
	if m.Admin != "" {
		fmt.Fprintf(w, "admin: http://%s/ (metrics, healthz, readyz, debug/pprof)\n", m.Admin)
	}
	if ops := opsLine(m.MasterOps); ops != "" {
		fmt.Fprintln(w, ops)
	}
	for _, p := range st.Others {
		fmt.Fprintf(w, "generation %d too: master pid %d, version %s, %s\n", p.Generation, p.PID, p.Version, p.State)
	}
	if c := m.Cluster; c != nil {
		kind := "external nats"
		if c.Embedded {
			kind = fmt.Sprintf("embedded nats, %d routes", c.Routes)
		}
		nodes, connected := 0, 0
		var delivered, dropped uint64
		for _, x := range st.Workers {
			if n := x.Cluster; n != nil {
				nodes++
				if n.Connected {
					connected++
				}
				delivered += n.Delivered
				dropped += n.Dropped
			}
		}
		fmt.Fprintf(w, "cluster: %s (%s), prefix %s, nodes %d/%d connected, delivered %d, dropped %d\n",
			c.URL, kind, c.Prefix, connected, nodes, delivered, dropped)
	}
	fmt.Fprintln(w, "---------------------------------- WORKERS ----------------------------------")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "id\tpid\tname\tlisten\tstate\tgen\tconnections\trequests\tqps\tmemory\ttimers\texits\trecycles\tlast exit")
	row := func(x ipc.Worker, state string) {
		recycles := strconv.Itoa(x.Recycles)
		if x.LastRecycle != "" {
			recycles += " (" + x.LastRecycle + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t%s\t%d\t%d\t%s\t%s\n",
			x.ID, x.PID, x.Name, x.Listen, state, x.Generation, x.Connections, x.Requests, x.QPS,
			humanBytes(x.MemoryBytes), x.Timers, x.ExitCount, recycles, x.LastExit)
	}
	for _, x := range st.Workers {
		state := x.State
		if state == master.StateUnresponsive {
			// The figures are those of its last answer.
			state = fmt.Sprintf("%s (silent %.1fs)", state, x.SilentSeconds)
		}
		row(x, state)
	}
	live := map[int]bool{st.Master.PID: true}
	for _, o := range st.Others {
		live[o.PID] = true
	}
	for _, x := range st.Retiring {
		if !live[x.MasterPID] {
			// Adopted from a master that died (master/orphans.go).
			row(x, fmt.Sprintf("%s (orphan of master %d)", x.State, x.MasterPID))
			continue
		}
		row(x, x.State+" (recycled)")
	}
	tw.Flush()
}

// opsLine sums up the watchdog, recycling and reload figures of a master
// ("" when there is nothing to say).
func opsLine(o ipc.MasterOps) string {
	var parts []string
	if o.Unresponsive > 0 || o.UnresponsiveTotal > 0 || o.WatchdogKills > 0 {
		parts = append(parts, fmt.Sprintf("unresponsive: %d now, %d seen, %d killed", o.Unresponsive, o.UnresponsiveTotal, o.WatchdogKills))
	}
	if n := sumCounts(o.Recycles); n > 0 {
		parts = append(parts, fmt.Sprintf("recycles: %d (max_requests %d, max_memory %d)", n, o.Recycles[ipc.RecycleMaxRequests], o.Recycles[ipc.RecycleMaxMemory]))
	}
	if n := sumCounts(o.Reloads); n > 0 {
		parts = append(parts, fmt.Sprintf("reloads: %d ok, %d failed, %d refused", o.Reloads[ipc.ReloadOK], o.Reloads[ipc.ReloadFailed], o.Reloads[ipc.ReloadRefused]))
	}
	line := strings.Join(parts, "   ")
	if o.LastReloadError != "" {
		if line != "" {
			line += "\n"
		}
		line += "last reload error: " + o.LastReloadError
	}
	return line
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// Connections lists the open connections of the master's workers.
func (r CLI) Connections(paths master.Paths, asJSON bool, bound time.Duration) error {
	ans, err := r.request("connections", paths, ipc.Message{Type: ipc.TypeConnections}, bound)
	if err != nil {
		return err
	}
	var list []ipc.ConnInfo
	if len(ans.Body) > 0 {
		if err := ans.Decode(&list); err != nil {
			return err
		}
	}
	if list == nil {
		list = []ipc.ConnInfo{}
	}
	if asJSON {
		enc := json.NewEncoder(r.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(r.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "worker\tpid\tid\ttransport\tprotocol\tlocal\tremote\tbytes in\tbytes out\tage\tstate")
	for _, x := range list {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", x.Worker, x.PID, x.ID, x.Transport, x.Protocol,
			x.LocalAddr, x.RemoteAddr, x.BytesIn, x.BytesOut, (time.Duration(x.AgeSeconds*1e3) * time.Millisecond).String(), x.State)
	}
	tw.Flush()
	fmt.Fprintf(r.Stdout, "%d connections\n", len(list))
	return nil
}
