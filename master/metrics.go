//go:build unix

package master

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goes-project/goes/ipc"
)

// figure is one number of an ipc struct (Worker, with its Load, or
// MasterStatus) exported as a metric. Adding a number to those structs
// and one figure line here is all a new metric takes; TestFiguresCover
// fails for a number that has neither a figure nor a place in
// unexported. A worker's connection figures start as a counter in
// connections.Stats, reach ipc.Load by name (ipc.Load.CopyStats) and get
// their row in workerFigures: TestFiguresCover fails for a Stats field
// that has no Load field or no row (ARCHITECTURE.md, "Add a metric").
type figure struct {
	// field is the Go field's name; a dotted path reaches into a struct
	// pointer ("Cluster.Peers"), which may be nil (no sample then).
	field string
	name  string
	typ   prometheus.ValueType
	help  string
	// label and value, when set, are a label this figure's samples carry
	// with a fixed value: figures of one name that differ by it are one
	// metric ({"reason", "idle"}, {"reason", "head"}).
	label, value string
	// keys, for a map[string]number field, is the label its keys go to.
	keys string
	// known, with keys, are keys always shown (0 while the map lacks
	// them), so that a rate starts from the first scrape.
	known []string
	// nonZero leaves the sample out while the field is zero (a duration
	// of something that has not happened).
	nonZero bool
	// ifSet names a field (a dotted path, as field) that must not be zero
	// for the sample to be shown: a silence only once there was an answer.
	ifSet string
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// workerFigures are the numbers of each worker process (ipc.Worker and
// its ipc.Load), labelled listener and worker. Counts of one thing by
// reason are one metric with a label, one line per field, as in
//
//	{field: "IdleTimeouts", name: "goes_connections_timed_out_total", label: "reason", value: "idle", typ: counter, help: "Connections closed by a timeout, by reason."},
//	{field: "HeadTimeouts", name: "goes_connections_timed_out_total", label: "reason", value: "head", typ: counter},
//
// (the help of the first line is the metric's), or a map[string]number
// field with keys: "reason".
func workerFigures() []figure {
	return []figure{
		{field: "Connections", name: "goes_connections", typ: gauge, help: "Open connections."},
		{field: "Accepted", name: "goes_connections_accepted_total", typ: counter, help: "Connections accepted."},
		{field: "Requests", name: "goes_requests_total", typ: counter, help: "Messages received (requests of HTTP, frames of WebSocket, lines of text, ...)."},
		{field: "BytesIn", name: "goes_received_bytes_total", typ: counter, help: "Bytes received from clients."},
		{field: "BytesOut", name: "goes_sent_bytes_total", typ: counter, help: "Bytes sent to clients."},
		{field: "Errors", name: "goes_errors_total", typ: counter, help: "Bad input, callback panics and dropped sends together."},
		{field: "BadInput", name: "goes_bad_input_total", typ: counter, help: "Connections closed (datagrams dropped) for input their protocol refused."},
		{field: "Panics", name: "goes_callback_panics_total", typ: counter, help: "Panics recovered from callbacks."},
		{field: "SendBufferFull", name: "goes_send_buffer_full_total", typ: counter, help: "Sends dropped because the connection's send buffer was full."},
		{field: "LoopBusySeconds", name: "goes_worker_event_loop_busy_seconds_total", typ: counter, help: "Time the worker's event loops spent handling events rather than waiting for them, summed over its loops."},
		{field: "InputShed", name: "goes_input_shed_total", typ: counter, help: "Connections shed because the worker's budget for unfinished input (max_input_memory) was spent."},
		{field: "AcceptPauses", name: "goes_accept_pauses_total", typ: counter, help: "Times the worker stopped accepting for a moment because it held more than its share of its listener's connections (accept_margin)."},
		{field: "AccessLogDropped", name: "goes_access_log_dropped_total", typ: counter, help: "Access log lines dropped because the log's queue was full (access_log): the disk did not keep up."},
		{field: "IOUringSends", name: "goes_io_uring_sends_total", typ: counter, help: "Writes the worker's event loops made in io_uring batches (fan-outs); 0 where io_uring is off or not allowed."},
		{field: "Writes", name: "goes_socket_writes_total", typ: counter, help: "Writes the worker made to stream sockets (pipelined answers share one)."},
		{field: "InputHeld", name: "goes_input_held_bytes", typ: gauge, help: "Memory the worker holds for unfinished input now (bounded by max_input_memory)."},
		{field: "Closed", keys: "reason", known: []string{"header_timeout", "body_timeout", "body_min_rate", "keepalive_timeout", "send_timeout", "idle_timeout"}, name: "goes_connections_timed_out_total", typ: counter, help: "Connections closed by a timeout rule, by reason (connections.Closed...: header_timeout, body_timeout, body_min_rate, keepalive_timeout, send_timeout, idle_timeout)."},
		{field: "Timers", name: "goes_timers", typ: gauge, help: "User timers pending."},
		{field: "MemoryBytes", name: "goes_worker_resident_memory_bytes", typ: gauge, help: "Resident memory of the worker process."},
		{field: "CPUSeconds", name: "goes_worker_cpu_seconds_total", typ: counter, help: "Processor time the worker process has used, user and system."},
		{field: "Goroutines", name: "goes_worker_goroutines", typ: gauge, help: "Goroutines of the worker process."},
		{field: "StartedAt", name: "goes_worker_start_time_seconds", typ: gauge, help: "When the worker process started, in seconds since the Unix epoch."},
		{field: "Cluster.Connected", name: "goes_cluster_connected", typ: gauge, help: "1 while the worker's cluster node is connected to NATS."},
		{field: "Cluster.Peers", name: "goes_cluster_peers", typ: gauge, help: "Other cluster nodes the worker's node knows."},
		{field: "Cluster.Connections", name: "goes_cluster_connections", typ: gauge, help: "Connections the worker's cluster node has registered."},
		{field: "Cluster.Topics", name: "goes_cluster_topics", typ: gauge, help: "Cluster subjects the worker's node subscribes to."},
		{field: "Cluster.Delivered", name: "goes_cluster_delivered_total", typ: counter, help: "Cluster messages delivered to the worker's connections."},
		{field: "Cluster.NotHere", name: "goes_cluster_not_here_total", typ: counter, help: "Cluster messages for connections the worker no longer has."},
		{field: "Cluster.SendErrors", name: "goes_cluster_send_errors_total", typ: counter, help: "Cluster publishes that failed."},
		{field: "Cluster.Malformed", name: "goes_cluster_malformed_total", typ: counter, help: "Cluster messages that could not be decoded."},
		{field: "Cluster.Dropped", name: "goes_cluster_dropped_total", typ: counter, help: "Cluster messages dropped."},
		{field: "TLSHandshakes", keys: "result", known: []string{ipc.TLSHandshakeOK, ipc.TLSHandshakeFailed}, name: "goes_tls_handshakes_total", typ: counter, help: "TLS handshakes of the worker's listener, by result (ok; failed: the connection closed before its handshake completed)."},
		{field: "TLSResumed", name: "goes_tls_resumed_handshakes_total", typ: counter, help: "TLS handshakes that resumed a session (a ticket)."},
		{field: "TLSConnections", name: "goes_tls_connections", typ: gauge, help: "Open TLS connections whose handshake has completed (goes_connections counts those still in their handshake too)."},
	}
}

// slotFigures are the numbers of a worker id that hold with or without a
// process, labelled listener and worker.
func slotFigures() []figure {
	return []figure{
		{field: "ExitCount", name: "goes_worker_exits_total", typ: counter, help: "Unexpected exits of the worker id's processes."},
		{field: "SilentSeconds", ifSet: "LastSeen", name: "goes_worker_silent_seconds", typ: gauge, help: "How long the worker's process has not answered its master: at most about the watchdog interval while it is healthy (shown once it has answered)."},
		{field: "Unresponsive", name: "goes_worker_unresponsive_total", typ: counter, help: "Times a process of the worker id was found unresponsive by the watchdog."},
		{field: "WatchdogKills", name: "goes_worker_watchdog_kills_total", typ: counter, help: "Processes of the worker id killed by the watchdog for being unresponsive, and replaced."},
		{field: "Recycles", name: "goes_worker_recycles_total", typ: counter, help: "Processes of the worker id replaced by recycling (max_requests, max_memory)."},
	}
}

// masterFigures are the numbers of the master (ipc.MasterStatus).
func masterFigures() []figure {
	return []figure{
		{field: "Generation", name: "goes_master_generation", typ: gauge, help: "The master's generation: 1, and one more with every reload."},
		{field: "Workers", name: "goes_master_worker_slots", typ: gauge, help: "Worker ids the master runs (the sum of the listeners' counts)."},
		{field: "StartedAt", name: "goes_master_start_time_seconds", typ: gauge, help: "When the master started, in seconds since the Unix epoch."},
		{field: "Exits", keys: "reason", name: "goes_master_worker_exits_total", typ: counter, help: "Unexpected worker exits, by how they ended."},
		{field: "Restarts", name: "goes_master_worker_restarts_total", typ: counter, help: "Workers started again after an unexpected exit."},
		{field: "Recycles", keys: "reason", known: []string{ipc.RecycleMaxRequests, ipc.RecycleMaxMemory}, name: "goes_master_worker_recycles_total", typ: counter, help: "Workers replaced by recycling, by reason (max_requests, max_memory)."},
		{field: "Unresponsive", name: "goes_master_unresponsive_workers", typ: gauge, help: "Worker processes unresponsive now (no answer to the master for the unresponsive timeout)."},
		{field: "UnresponsiveTotal", name: "goes_master_worker_unresponsive_total", typ: counter, help: "Times a worker process was found unresponsive."},
		{field: "WatchdogKills", name: "goes_master_worker_watchdog_kills_total", typ: counter, help: "Unresponsive worker processes killed by the watchdog."},
		{field: "Watchdog.IntervalSeconds", name: "goes_master_watchdog_interval_seconds", typ: gauge, help: "How often the master asks every worker for its figures."},
		{field: "Watchdog.UnresponsiveSeconds", name: "goes_master_watchdog_unresponsive_timeout_seconds", typ: gauge, help: "Silence after which a worker counts as unresponsive."},
		{field: "Watchdog.KillSeconds", name: "goes_master_watchdog_kill_timeout_seconds", typ: gauge, help: "Silence after which a worker is killed and replaced (0: never)."},
		{field: "Reloads", keys: "result", known: []string{ipc.ReloadOK, ipc.ReloadFailed, ipc.ReloadRefused}, name: "goes_master_reloads_total", typ: counter,
			help: "Reloads by result (ok, failed, refused), counted over the generations of the run directory: a new master goes on from its predecessor's counts."},
		{field: "ReloadSeconds", nonZero: true, name: "goes_master_reload_duration_seconds", typ: gauge, help: "How long the reload that started this master took, to serving."},
		{field: "DrainSeconds", nonZero: true, name: "goes_master_drain_duration_seconds", typ: gauge, help: "How long the previous generation's workers took to drain after the reload."},
		{field: "Cluster.Routes", name: "goes_cluster_routes", typ: gauge, help: "Routes of the master's embedded NATS server to other servers."},
	}
}

// compiled is a figure with its field's index path and its metric's
// description.
type compiled struct {
	figure
	index []int
	ifSet []int // nil: always
	desc  *prometheus.Desc
}

// compile resolves figs' fields in t and makes their descriptions, with
// labels first; figures of one name share a description.
func compile(t reflect.Type, figs []figure, labels []string) ([]compiled, error) {
	descs := map[string]*prometheus.Desc{}
	helps := map[string]string{}
	for _, f := range figs {
		if f.help != "" {
			helps[f.name] = f.help
		}
	}
	out := make([]compiled, 0, len(figs))
	for _, f := range figs {
		index, err := fieldIndex(t, f.field)
		if err != nil {
			return nil, err
		}
		var ifSet []int
		if f.ifSet != "" {
			if ifSet, err = fieldIndex(t, f.ifSet); err != nil {
				return nil, err
			}
		}
		d := descs[f.name]
		if d == nil {
			ls := labels
			if f.label != "" {
				ls = append(ls[:len(ls):len(ls)], f.label)
			}
			if f.keys != "" {
				ls = append(ls[:len(ls):len(ls)], f.keys)
			}
			d = prometheus.NewDesc(f.name, helps[f.name], ls, nil)
			descs[f.name] = d
		}
		out = append(out, compiled{figure: f, index: index, ifSet: ifSet, desc: d})
	}
	return out, nil
}

// fieldIndex resolves a dotted field path in t (through struct pointers).
func fieldIndex(t reflect.Type, path string) ([]int, error) {
	var index []int
	for name := range strings.SplitSeq(path, ".") {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, fmt.Errorf("master: metrics: %s: %s is not a struct", path, t)
		}
		sf, ok := t.FieldByName(name)
		if !ok {
			return nil, fmt.Errorf("master: metrics: no field %s in %s", path, t)
		}
		index = append(index, sf.Index...)
		t = sf.Type
	}
	return index, nil
}

// emit sends the samples of figs read from v (a struct) with labels.
func emit(ch chan<- prometheus.Metric, figs []compiled, v reflect.Value, labels ...string) {
	for _, f := range figs {
		fv, err := v.FieldByIndexErr(f.index)
		if err != nil {
			continue // through a nil pointer: no such part
		}
		if f.ifSet != nil {
			if sv, err := v.FieldByIndexErr(f.ifSet); err != nil || sv.IsZero() {
				continue
			}
		}
		ls := labels
		if f.label != "" {
			ls = append(ls[:len(ls):len(ls)], f.value)
		}
		if fv.Kind() == reflect.Map {
			iter := fv.MapRange()
			for iter.Next() {
				if x, ok := number(iter.Value()); ok {
					ch <- prometheus.MustNewConstMetric(f.desc, f.typ, x, append(ls[:len(ls):len(ls)], iter.Key().String())...)
				}
			}
			for _, k := range f.known {
				if !fv.MapIndex(reflect.ValueOf(k)).IsValid() {
					ch <- prometheus.MustNewConstMetric(f.desc, f.typ, 0, append(ls[:len(ls):len(ls)], k)...)
				}
			}
			continue
		}
		x, ok := number(fv)
		if !ok || (f.nonZero && x == 0) {
			continue
		}
		if f.typ == counter {
			x = roundNano(x)
		}
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, x, ls...)
	}
}

// roundNano rounds a counter of seconds to the nanosecond. Its sum over
// the processes of an id is made in another order when one exits (its
// figures move to the carried ones), and floating-point addition may
// then differ in the last bit: 0.133180842 after 0.13318084200000002
// would read as a counter reset.
func roundNano(x float64) float64 { return math.Round(x*1e9) / 1e9 }

var timeType = reflect.TypeFor[time.Time]()

// number is v as a sample value: numbers, booleans (1 or 0) and times
// (seconds since the epoch; a zero time is no sample).
func number(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	case reflect.Bool:
		if v.Bool() {
			return 1, true
		}
		return 0, true
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time)
			if t.IsZero() {
				return 0, false
			}
			return float64(t.UnixNano()) / 1e9, true
		}
	}
	return 0, false
}

// collector is the admin endpoint's Prometheus collector: every scrape
// asks the master for a status, as the status command does (the workers
// answer from the counters they keep anyway; one that does not answer
// within the status bound is shown with its last figures), and turns it
// into samples. Safe for concurrent use.
type collector struct {
	status  func(context.Context) (ipc.Status, error)
	timeout time.Duration

	workers, slots, master      []compiled
	states, build, up, retiring *prometheus.Desc
	duration, tlsDuration       *prometheus.Desc
	loopLag                     *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(status func(context.Context) (ipc.Status, error)) (*collector, error) {
	c := &collector{status: status, timeout: 5 * time.Second}
	var err error
	workerLabels := []string{"listener", "worker"}
	if c.workers, err = compile(reflect.TypeFor[ipc.Worker](), workerFigures(), workerLabels); err != nil {
		return nil, err
	}
	if c.slots, err = compile(reflect.TypeFor[ipc.Worker](), slotFigures(), workerLabels); err != nil {
		return nil, err
	}
	if c.master, err = compile(reflect.TypeFor[ipc.MasterStatus](), masterFigures(), nil); err != nil {
		return nil, err
	}
	c.states = prometheus.NewDesc("goes_master_workers", "Worker ids by the state of their process.", []string{"state"}, nil)
	c.build = prometheus.NewDesc("goes_build_info", "The program's version and the Go version it was built with; always 1.", []string{"version", "goversion"}, nil)
	c.up = prometheus.NewDesc("goes_worker_up", "1 for a worker id whose process answers its master; 0 for one without a process, starting, or unresponsive (its last figures are shown, goes_worker_silent_seconds says how long it has been silent).", workerLabels, nil)
	c.duration = prometheus.NewDesc("goes_request_duration_seconds", "Time the OnMessage callback took for a message (an HTTP request, a WebSocket frame, a line of text, ...), from its start to its return; in a callback pool, the wait for a pool goroutine is not included.", workerLabels, nil)
	c.loopLag = prometheus.NewDesc("goes_event_loop_lag_seconds", "The worker's event-loop lag: its event loops' passes by duration (one pass: the ready events handled, with the callbacks that run on the loop, and the work other goroutines posted). An event that becomes ready during a pass waits at most the rest of the pass; none on the standard engine.", workerLabels, nil)
	c.tlsDuration = prometheus.NewDesc("goes_tls_handshake_duration_seconds", "Time a TLS listener's completed handshakes took, from the accept to the handshake's end (handshakes an event-loop engine ran).", workerLabels, nil)
	c.retiring = prometheus.NewDesc("goes_master_retiring_workers", "Worker processes replaced by a recycle, and orphans of a dead master this one adopted, that still drain.", nil, nil)
	return c, nil
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, set := range [][]compiled{c.workers, c.slots, c.master} {
		for _, f := range set {
			if !seen[f.desc] {
				seen[f.desc] = true
				ch <- f.desc
			}
		}
	}
	ch <- c.states
	ch <- c.build
	ch <- c.up
	ch <- c.retiring
	ch <- c.duration
	ch <- c.tlsDuration
	ch <- c.loopLag
}

// Collect asks the master for its status and sends the samples.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.build, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.build, gauge, 1, st.Master.Version, runtime.Version())
	emit(ch, c.master, reflect.ValueOf(st.Master))
	states := map[string]int{}
	for _, s := range []string{StateStarting, StateRunning, StateUnresponsive, StateDraining, StateStopping, StateBackoff, StateFailed} {
		states[s] = 0 // always shown; others appear while a worker is in them
	}
	for _, w := range st.Workers {
		states[w.State]++
		id := strconv.Itoa(w.ID)
		w.AddCounts(carriedCounts(w, st))
		v := reflect.ValueOf(w)
		emit(ch, c.slots, v, w.Name, id)
		if hasFigures(w) {
			l := slotLoad(w, st)
			if w.Cluster == nil {
				l.Cluster = nil // no cluster now: none of its samples
			}
			w.Load = l
			emit(ch, c.workers, reflect.ValueOf(w), w.Name, id)
			if h := w.RequestDuration; h != nil {
				count, buckets := cumulative(h, ipc.RequestDurationBuckets[:])
				ch <- prometheus.MustNewConstHistogram(c.duration, count, roundNano(h.SumSeconds), buckets, w.Name, id)
			}
			if h := w.TLSHandshakeDuration; h != nil {
				count, buckets := cumulative(h, ipc.TLSHandshakeDurationBuckets[:])
				ch <- prometheus.MustNewConstHistogram(c.tlsDuration, count, roundNano(h.SumSeconds), buckets, w.Name, id)
			}
			if h := w.LoopLag; h != nil {
				count, buckets := cumulative(h, ipc.LoopLagBuckets[:])
				ch <- prometheus.MustNewConstHistogram(c.loopLag, count, roundNano(h.SumSeconds), buckets, w.Name, id)
			}
		}
		ch <- prometheus.MustNewConstMetric(c.up, gauge, boolValue(isUp(w)), w.Name, id)
	}
	states[StateDraining] += st.PreviousDraining
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.states, gauge, float64(n), s)
	}
	ch <- prometheus.MustNewConstMetric(c.retiring, gauge, float64(len(st.Retiring)))
}

// hasFigures reports whether w's Load was filled in by its process: a
// process always has resident memory. Without figures (no process, not
// ready yet) a worker's series are left out of the scrape rather than
// shown as zeros, which would read as counter resets. An unresponsive
// worker has the figures of its last answer, as status shows them: its
// counters go on from where they were when it answers again.
func hasFigures(w ipc.Worker) bool { return w.PID != 0 && w.MemoryBytes != 0 }

// isUp reports whether w's process answers its master (goes_worker_up).
func isUp(w ipc.Worker) bool { return hasFigures(w) && w.State != StateUnresponsive }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// loadCounters are the top-level fields of ipc.Load that workerFigures
// export as counters: the figures a worker id carries from one process to
// the next (addCounters); clusterCounters those of its cluster node
// (ipc.NodeStats, the "Cluster." rows).
var loadCounters, clusterCounters = counterIndexes(reflect.TypeFor[ipc.Load](), ""),
	counterIndexes(reflect.TypeFor[ipc.NodeStats](), "Cluster.")

// counterIndexes are the indexes in t of the fields that workerFigures
// export as counters under prefix ("": the top-level fields).
func counterIndexes(t reflect.Type, prefix string) [][]int {
	var out [][]int
	for _, f := range workerFigures() {
		name, ok := strings.CutPrefix(f.field, prefix)
		if f.typ != counter || !ok || strings.Contains(name, ".") {
			continue
		}
		if sf, ok := t.FieldByName(name); ok {
			out = append(out, sf.Index)
		}
	}
	return out
}

// addCounters adds the counters of src to dst (maps key by key, into a
// map of dst's own). src's cluster counters go to a cluster part of
// dst's own, which keeps dst's other figures (a copy of src's when dst
// has none).
func addCounters(dst *ipc.Load, src ipc.Load) {
	if src.RequestDuration != nil {
		h := &ipc.Histogram{}
		h.Add(dst.RequestDuration)
		h.Add(src.RequestDuration)
		dst.RequestDuration = h // a new one: dst's may be shared
	}
	if src.TLSHandshakeDuration != nil {
		h := &ipc.Histogram{}
		h.Add(dst.TLSHandshakeDuration)
		h.Add(src.TLSHandshakeDuration)
		dst.TLSHandshakeDuration = h
	}
	if src.LoopLag != nil {
		h := &ipc.Histogram{}
		h.Add(dst.LoopLag)
		h.Add(src.LoopLag)
		dst.LoopLag = h
	}
	if src.Cluster != nil {
		c := *src.Cluster
		if dst.Cluster != nil {
			c = *dst.Cluster
			sumFields(reflect.ValueOf(&c).Elem(), reflect.ValueOf(*src.Cluster), clusterCounters)
		}
		dst.Cluster = &c // a new one: dst's may be shared
	}
	sumFields(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src), loadCounters)
}

// sumFields adds the fields of from at indexes to those of to.
func sumFields(d, s reflect.Value, indexes [][]int) {
	for _, index := range indexes {
		to, from := d.FieldByIndex(index), s.FieldByIndex(index)
		switch to.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			to.SetUint(to.Uint() + from.Uint())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			to.SetInt(to.Int() + from.Int())
		case reflect.Float32, reflect.Float64:
			to.SetFloat(to.Float() + from.Float())
		case reflect.Map:
			if from.Len() == 0 {
				continue
			}
			m := reflect.MakeMapWithSize(to.Type(), to.Len()+from.Len())
			for _, src := range []reflect.Value{to, from} {
				iter := src.MapRange()
				for iter.Next() {
					k := iter.Key()
					sum := iter.Value()
					if have := m.MapIndex(k); have.IsValid() {
						sum = addNumbers(have, sum)
					}
					m.SetMapIndex(k, sum)
				}
			}
			to.Set(m)
		}
	}
}

// addNumbers is a+b, of a's type (an integer).
func addNumbers(a, b reflect.Value) reflect.Value {
	sum := reflect.New(a.Type()).Elem()
	switch a.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		sum.SetInt(a.Int() + b.Int())
	default:
		sum.SetUint(a.Uint() + b.Uint())
	}
	return sum
}

// masterCounters are the fields of ipc.MasterStatus that masterFigures
// export as counters and that a master carries on from the previous
// generation's (addMasterCounters), and the total of its exits. Reloads
// are carried by the reload itself (procenv.ReloadCounts).
var masterCounters = func() [][]int {
	t := reflect.TypeFor[ipc.MasterStatus]()
	out := [][]int{}
	for _, name := range []string{"ExitCount"} {
		sf, _ := t.FieldByName(name)
		out = append(out, sf.Index)
	}
	for _, f := range masterFigures() {
		if f.typ != counter || f.field == "Reloads" || strings.Contains(f.field, ".") {
			continue
		}
		if sf, ok := t.FieldByName(f.field); ok {
			out = append(out, sf.Index)
		}
	}
	return out
}()

// addMasterCounters adds the counters of src, a previous generation's
// master, to dst (maps into maps of dst's own).
func addMasterCounters(dst *ipc.MasterStatus, src ipc.MasterStatus) {
	sumFields(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src), masterCounters)
}

// slotLoad is the figures of w (an id of the master st describes) as its
// metrics show them: its process's, with the counters of the id's exited
// processes (st.Carried) and its retiring processes (their counters and
// connections) added, so that recycling and restarts keep them growing;
// the orphans the master adopted (Worker.AdoptedBy) count with the id of
// their listener name and ID, as retiring processes.
func slotLoad(w ipc.Worker, st ipc.Status) ipc.Load {
	l := w.Load
	l.Closed, l.RequestDuration, l.TLSHandshakeDuration, l.LoopLag, l.Cluster = nil, nil, nil, nil, nil
	addCounters(&l, ipc.Load{Closed: w.Closed, RequestDuration: w.RequestDuration, TLSHandshakeDuration: w.TLSHandshakeDuration, LoopLag: w.LoopLag, Cluster: w.Cluster})
	if w.MasterPID != st.Master.PID {
		return l
	}
	for _, c := range st.Carried {
		if c.ID == w.ID && c.Name == w.Name {
			addCounters(&l, c.Load)
		}
	}
	for _, c := range st.Previous {
		if c.ID == w.ID && c.Name == w.Name {
			addCounters(&l, c.Load)
			l.Connections += c.Connections
			l.TLSConnections += c.TLSConnections
			l.InputHeld += c.InputHeld
		}
	}
	for _, r := range st.Retiring {
		own := r.MasterPID == w.MasterPID && r.PID != w.PID
		adopted := r.AdoptedBy == w.MasterPID && r.Name == w.Name
		if r.ID == w.ID && (own || adopted) {
			addCounters(&l, r.Load)
			l.Connections += r.Connections
			l.TLSConnections += r.TLSConnections
			l.InputHeld += r.InputHeld
		}
	}
	return l
}

// carriedCounts are the slot counts the previous generations kept of w's
// listener name and id (w an id of the master st describes): those
// carried (st.Carried), and the previous generation's while it drains
// (st.Previous). Counts of a master's own processes are on its Worker
// entries.
func carriedCounts(w ipc.Worker, st ipc.Status) ipc.SlotCounts {
	var n ipc.SlotCounts
	if w.MasterPID != st.Master.PID {
		return n
	}
	for _, cs := range [][]ipc.Carried{st.Carried, st.Previous} {
		for _, c := range cs {
			if c.ID == w.ID && c.Name == w.Name {
				n.Add(c.Counts)
			}
		}
	}
	return n
}

// cumulative is h's count and its buckets of bounds as Prometheus has
// them (each bound with the count at or below it).
func cumulative(h *ipc.Histogram, bounds []float64) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, c := range h.Counts {
		n += c
		if i < len(bounds) {
			buckets[bounds[i]] = n
		}
	}
	return n, buckets
}
