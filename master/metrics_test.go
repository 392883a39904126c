//go:build unix

package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/ipc"
)

// unexported names the numbers of the status structs that are not
// metrics, and why.
var unexported = map[string]string{
	"Worker.ID":                         "the worker label",
	"Worker.Index":                      "the worker label says it",
	"Worker.MasterPID":                  "a process id",
	"Worker.AdoptedBy":                  "a process id",
	"Worker.PID":                        "a process id",
	"Worker.Generation":                 "goes_master_generation",
	"Worker.Route":                      "an address",
	"Worker.QPS":                        "rate(goes_requests_total[1m])",
	"Worker.LastSeen":                   "goes_worker_silent_seconds: the time since",
	"Worker.RequestDuration.SumSeconds": "goes_request_duration_seconds_sum (a histogram, which the collector makes itself)",
	"MasterStatus.PID":                  "a process id",
	"MasterStatus.UptimeSeconds":        "goes_master_start_time_seconds",
	"MasterStatus.ExitCount":            "sum(goes_master_worker_exits_total)",
	"MasterStatus.Cluster.Embedded":     "not a measure",
}

func init() {
	unexported["Worker.TLSHandshakeDuration.SumSeconds"] = "goes_tls_handshake_duration_seconds_sum (a histogram, which the collector makes itself)"
	unexported["Worker.LoopLag.SumSeconds"] = "goes_event_loop_lag_seconds_sum (a histogram, which the collector makes itself)"
}

// measures lists the dotted paths of t's fields that are numbers, booleans,
// times or maps, through embedded structs and struct pointers.
func measures(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		path := prefix + f.Name
		switch {
		case f.Anonymous:
			out = append(out, measures(ft, prefix)...)
		case ft == timeType, ft.Kind() == reflect.Map:
			out = append(out, path)
		case ft.Kind() == reflect.Struct:
			out = append(out, measures(ft, path+".")...)
		case ft.Kind() >= reflect.Bool && ft.Kind() <= reflect.Float64:
			out = append(out, path)
		}
	}
	return out
}

// TestFiguresCover: every number of ipc.Worker (with ipc.Load) and
// ipc.MasterStatus is a metric, or says in unexported why not. A field
// added to those structs fails here until it has its one line in
// workerFigures, slotFigures or masterFigures.
func TestFiguresCover(t *testing.T) {
	covered := map[string]bool{}
	for _, f := range append(workerFigures(), slotFigures()...) {
		covered["Worker."+f.field] = true
	}
	for _, f := range masterFigures() {
		covered["MasterStatus."+f.field] = true
	}
	for _, s := range []struct {
		name string
		t    reflect.Type
	}{
		{"Worker", reflect.TypeFor[ipc.Worker]()},
		{"MasterStatus", reflect.TypeFor[ipc.MasterStatus]()},
	} {
		for _, path := range measures(s.t, s.name+".") {
			if !covered[path] && unexported[path] == "" {
				t.Errorf("%s is not a metric: add a figure for it (master/metrics.go) or say why not in unexported", path)
			}
			if covered[path] && unexported[path] != "" {
				t.Errorf("%s is a metric and listed in unexported", path)
			}
		}
	}
}

// TestFigureNames follows Prometheus's naming guide: goes_ first,
// counters end in _total and gauges do not, units in base units.
func TestFigureNames(t *testing.T) {
	for _, f := range append(append(workerFigures(), slotFigures()...), masterFigures()...) {
		if !strings.HasPrefix(f.name, "goes_") {
			t.Errorf("%s: not goes_", f.name)
		}
		if (f.typ == counter) != strings.HasSuffix(f.name, "_total") {
			t.Errorf("%s: a %v must end in _total exactly when it is a counter", f.name, f.typ)
		}
		for _, bad := range []string{"_ms", "_milliseconds", "_kb", "_mb", "_count"} {
			if strings.Contains(f.name, bad) {
				t.Errorf("%s: use base units (seconds, bytes), no %s", f.name, bad)
			}
		}
	}
	if _, err := compile(reflect.TypeFor[ipc.Worker](), []figure{{field: "Nope", name: "goes_nope", typ: gauge}}, nil); err == nil {
		t.Error("a figure of a missing field compiled")
	}
}

func sampleStatus() ipc.Status {
	started := time.Unix(1_700_000_000, 0)
	return ipc.Status{
		Master: ipc.MasterStatus{
			PID: 10, Version: "1.2.3", StartedAt: started, State: StateRunning, Generation: 3, Workers: 4,
			ExitCount: 3, Exits: map[string]int{"exit status 2": 2, "signal: killed": 1}, Restarts: 3,
			ReloadSeconds: 0.25,
			MasterOps: ipc.MasterOps{
				Unresponsive: 1, UnresponsiveTotal: 2, WatchdogKills: 1,
				Recycles: map[string]int{ipc.RecycleMaxRequests: 4},
				Reloads:  map[string]int{ipc.ReloadOK: 2, ipc.ReloadFailed: 1},
				Watchdog: ipc.WatchdogSettings{IntervalSeconds: 1, UnresponsiveSeconds: 5, KillSeconds: 30},
			},
			Cluster: &ipc.ClusterInfo{Routes: 1, Embedded: true},
		},
		Workers: []ipc.Worker{
			{ID: 0, PID: 11, Name: "web", Listen: "tcp://127.0.0.1:8080", State: StateRunning, StartedAt: started, ExitCount: 3,
				Load: ipc.Load{Connections: 5, Accepted: 9, Requests: 100, BytesIn: 1000, BytesOut: 2000, Errors: 6,
					BadInput: 1, Panics: 2, SendBufferFull: 3, MemoryBytes: 1 << 20, CPUSeconds: 1.5, Goroutines: 7, Timers: 2,
					Cluster: &ipc.NodeStats{Connected: true, Peers: 1, Delivered: 4}},
				Ops: ipc.Ops{SilentSeconds: 0.5, LastSeen: started.Add(time.Hour), Recycles: 4, LastRecycle: ipc.RecycleMaxRequests}},
			{ID: 1, PID: 12, Name: "web", Listen: "tcp://127.0.0.1:8080", State: StateStarting, StartedAt: started},
			{ID: 2, Name: "text", Listen: "tcp://127.0.0.1:8082", State: StateBackoff, ExitCount: 1,
				Ops: ipc.Ops{Unresponsive: 1, WatchdogKills: 1}},
			// Stopped: the figures of its last answer, 7.5 s ago.
			{ID: 3, PID: 14, Name: "text", Listen: "tcp://127.0.0.1:8082", State: StateUnresponsive, StartedAt: started,
				Load: ipc.Load{Connections: 2, Requests: 50, MemoryBytes: 2 << 20, Goroutines: 9},
				Ops:  ipc.Ops{SilentSeconds: 7.5, LastSeen: started.Add(time.Hour), Unresponsive: 1}},
		},
		Retiring: []ipc.Worker{{ID: 0, PID: 9, Name: "web", Listen: "tcp://127.0.0.1:8080", State: StateDraining}},
	}
}

// TestCollector turns a status into samples: a worker without figures
// has none but goes_worker_up 0 and its exits; an unresponsive one its
// last figures, goes_worker_up 0 and its silence; the cluster's figures
// appear where there is a cluster; counts by reason or result show every
// known key; the result passes promlint.
func TestCollector(t *testing.T) {
	c, err := newCollector(func(context.Context) (ipc.Status, error) { return sampleStatus(), nil })
	if err != nil {
		t.Fatal(err)
	}
	text := `
# HELP goes_requests_total Messages received (requests of HTTP, frames of WebSocket, lines of text, ...).
# TYPE goes_requests_total counter
goes_requests_total{listener="web",worker="0"} 100
goes_requests_total{listener="text",worker="3"} 50
# HELP goes_callback_panics_total Panics recovered from callbacks.
# TYPE goes_callback_panics_total counter
goes_callback_panics_total{listener="web",worker="0"} 2
goes_callback_panics_total{listener="text",worker="3"} 0
# HELP goes_worker_up 1 for a worker id whose process answers its master; 0 for one without a process, starting, or unresponsive (its last figures are shown, goes_worker_silent_seconds says how long it has been silent).
# TYPE goes_worker_up gauge
goes_worker_up{listener="web",worker="0"} 1
goes_worker_up{listener="web",worker="1"} 0
goes_worker_up{listener="text",worker="2"} 0
goes_worker_up{listener="text",worker="3"} 0
# HELP goes_worker_silent_seconds How long the worker's process has not answered its master: at most about the watchdog interval while it is healthy (shown once it has answered).
# TYPE goes_worker_silent_seconds gauge
goes_worker_silent_seconds{listener="web",worker="0"} 0.5
goes_worker_silent_seconds{listener="text",worker="3"} 7.5
# HELP goes_worker_exits_total Unexpected exits of the worker id's processes.
# TYPE goes_worker_exits_total counter
goes_worker_exits_total{listener="web",worker="0"} 3
goes_worker_exits_total{listener="web",worker="1"} 0
goes_worker_exits_total{listener="text",worker="2"} 1
goes_worker_exits_total{listener="text",worker="3"} 0
# HELP goes_worker_watchdog_kills_total Processes of the worker id killed by the watchdog for being unresponsive, and replaced.
# TYPE goes_worker_watchdog_kills_total counter
goes_worker_watchdog_kills_total{listener="web",worker="0"} 0
goes_worker_watchdog_kills_total{listener="web",worker="1"} 0
goes_worker_watchdog_kills_total{listener="text",worker="2"} 1
goes_worker_watchdog_kills_total{listener="text",worker="3"} 0
# HELP goes_worker_recycles_total Processes of the worker id replaced by recycling (max_requests, max_memory).
# TYPE goes_worker_recycles_total counter
goes_worker_recycles_total{listener="web",worker="0"} 4
goes_worker_recycles_total{listener="web",worker="1"} 0
goes_worker_recycles_total{listener="text",worker="2"} 0
goes_worker_recycles_total{listener="text",worker="3"} 0
# HELP goes_master_worker_exits_total Unexpected worker exits, by how they ended.
# TYPE goes_master_worker_exits_total counter
goes_master_worker_exits_total{reason="exit status 2"} 2
goes_master_worker_exits_total{reason="signal: killed"} 1
# HELP goes_master_worker_recycles_total Workers replaced by recycling, by reason (max_requests, max_memory).
# TYPE goes_master_worker_recycles_total counter
goes_master_worker_recycles_total{reason="max_requests"} 4
goes_master_worker_recycles_total{reason="max_memory"} 0
# HELP goes_master_unresponsive_workers Worker processes unresponsive now (no answer to the master for the unresponsive timeout).
# TYPE goes_master_unresponsive_workers gauge
goes_master_unresponsive_workers 1
# HELP goes_master_worker_unresponsive_total Times a worker process was found unresponsive.
# TYPE goes_master_worker_unresponsive_total counter
goes_master_worker_unresponsive_total 2
# HELP goes_master_worker_watchdog_kills_total Unresponsive worker processes killed by the watchdog.
# TYPE goes_master_worker_watchdog_kills_total counter
goes_master_worker_watchdog_kills_total 1
# HELP goes_master_watchdog_kill_timeout_seconds Silence after which a worker is killed and replaced (0: never).
# TYPE goes_master_watchdog_kill_timeout_seconds gauge
goes_master_watchdog_kill_timeout_seconds 30
# HELP goes_master_reloads_total Reloads by result (ok, failed, refused), counted over the generations of the run directory: a new master goes on from its predecessor's counts.
# TYPE goes_master_reloads_total counter
goes_master_reloads_total{result="ok"} 2
goes_master_reloads_total{result="failed"} 1
goes_master_reloads_total{result="refused"} 0
# HELP goes_master_reload_duration_seconds How long the reload that started this master took, to serving.
# TYPE goes_master_reload_duration_seconds gauge
goes_master_reload_duration_seconds 0.25
# HELP goes_master_retiring_workers Worker processes replaced by a recycle, and orphans of a dead master this one adopted, that still drain.
# TYPE goes_master_retiring_workers gauge
goes_master_retiring_workers 1
# HELP goes_master_workers Worker ids by the state of their process.
# TYPE goes_master_workers gauge
goes_master_workers{state="backoff"} 1
goes_master_workers{state="draining"} 0
goes_master_workers{state="failed"} 0
goes_master_workers{state="running"} 1
goes_master_workers{state="starting"} 1
goes_master_workers{state="stopping"} 0
goes_master_workers{state="unresponsive"} 1
# HELP goes_cluster_connected 1 while the worker's cluster node is connected to NATS.
# TYPE goes_cluster_connected gauge
goes_cluster_connected{listener="web",worker="0"} 1
# HELP goes_cluster_routes Routes of the master's embedded NATS server to other servers.
# TYPE goes_cluster_routes gauge
goes_cluster_routes 1
# HELP goes_worker_start_time_seconds When the worker process started, in seconds since the Unix epoch.
# TYPE goes_worker_start_time_seconds gauge
goes_worker_start_time_seconds{listener="web",worker="0"} 1.7e+09
goes_worker_start_time_seconds{listener="text",worker="3"} 1.7e+09
`
	names := []string{"goes_requests_total", "goes_callback_panics_total", "goes_worker_up", "goes_worker_silent_seconds",
		"goes_worker_exits_total", "goes_worker_watchdog_kills_total", "goes_worker_recycles_total",
		"goes_master_worker_exits_total", "goes_master_worker_recycles_total", "goes_master_unresponsive_workers",
		"goes_master_worker_unresponsive_total", "goes_master_worker_watchdog_kills_total",
		"goes_master_watchdog_kill_timeout_seconds", "goes_master_reloads_total", "goes_master_reload_duration_seconds",
		"goes_master_drain_duration_seconds", "goes_master_retiring_workers", "goes_master_workers",
		"goes_cluster_connected", "goes_cluster_routes", "goes_worker_start_time_seconds"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(text), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	// Every figure shows up for the worker with figures and a cluster,
	// all but the cluster's for the unresponsive one; the slots' figures
	// for all four but the silence of the two never seen; goes_worker_up
	// of all four; seven states; build info; retiring; the master's, with
	// two exit reasons, two recycle reasons, three reload results and no
	// drain yet.
	// A by-reason map figure shows each of its known keys.
	clusterFigures, keyed := 0, 0
	for _, f := range workerFigures() {
		if strings.HasPrefix(f.field, "Cluster.") {
			clusterFigures++
		}
		if f.keys != "" {
			keyed += len(f.known) - 1
		}
	}
	want := len(workerFigures()) + (len(workerFigures()) - clusterFigures) +
		4*len(slotFigures()) - 2 + 4 + 7 + 1 + 1 +
		len(masterFigures()) + 1 + 1 + 2 - 1 + 2*keyed
	if n := testutil.CollectAndCount(c); n != want {
		t.Errorf("%d samples, want %d", n, want)
	}
}

// TestCollectorError: a status that fails fails the scrape.
func TestCollectorError(t *testing.T) {
	c, err := newCollector(func(context.Context) (ipc.Status, error) { return ipc.Status{}, errors.New("no answer") })
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("gather: %v", err)
	}
}

func TestReadiness(t *testing.T) {
	st := sampleStatus()
	for _, tc := range []struct {
		name  string
		edit  func(*ipc.Status)
		ready bool
		says  string
	}{
		{name: "a listener without a running worker", edit: func(*ipc.Status) {}, ready: false,
			says: "listener text (tcp://127.0.0.1:8082): 0 of 2 workers running"},
		{name: "every listener has one", edit: func(s *ipc.Status) { s.Workers[2].State = StateRunning }, ready: true,
			says: "listener web (tcp://127.0.0.1:8080): 1 of 2 workers running"},
		{name: "master stopping", edit: func(s *ipc.Status) { s.Workers[2].State = StateRunning; s.Master.State = StateStopping },
			ready: false, says: "master stopping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := st
			s.Workers = append([]ipc.Worker(nil), st.Workers...)
			tc.edit(&s)
			ready, report := readiness(s)
			if ready != tc.ready || !strings.Contains(report, tc.says) {
				t.Fatalf("ready %v, %q; want %v, %q", ready, report, tc.ready, tc.says)
			}
		})
	}
}

// TestStatsCover: every figure of a worker's connections.Stats reaches
// ipc.Load (a field of the name ipc.LoadField gives, which CopyStats
// fills) and so, through TestFiguresCover, a metric: a counter added to
// Stats fails here until it has its Load field and its figure row.
func TestStatsCover(t *testing.T) {
	covered := map[string]bool{}
	for _, f := range workerFigures() {
		covered[f.field] = true
	}
	load := reflect.TypeFor[ipc.Load]()
	st := reflect.TypeFor[connections.Stats]()
	var sample connections.Stats
	sv := reflect.ValueOf(&sample).Elem()
	for i := range st.NumField() {
		f := st.Field(i)
		name := ipc.LoadField(f)
		lf, ok := load.FieldByName(name)
		if !ok {
			t.Errorf("connections.Stats.%s has no ipc.Load.%s: add it (ipc/types.go)", f.Name, name)
			continue
		}
		if !covered[name] && unexported["Worker."+name] == "" {
			t.Errorf("connections.Stats.%s (ipc.Load.%s) is not a metric: add its row to workerFigures", f.Name, name)
		}
		// A value set in Stats arrives in Load.
		v := sv.Field(i)
		switch v.Kind() {
		case reflect.Int64:
			v.SetInt(int64(3000 + i))
		case reflect.Uint64:
			v.SetUint(uint64(3000 + i))
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]uint64{"idle_timeout": uint64(3000 + i)}))
		default:
			t.Errorf("connections.Stats.%s: a %v (teach this test and ipc.Load.CopyStats)", f.Name, lf.Type)
		}
	}
	var l ipc.Load
	l.CopyStats(sample)
	lv := reflect.ValueOf(l)
	for i := range st.NumField() {
		f := st.Field(i)
		got := lv.FieldByName(ipc.LoadField(f))
		if !got.IsValid() {
			continue
		}
		want := fmt.Sprint(sv.Field(i).Interface())
		if f.Type == reflect.TypeFor[time.Duration]() {
			want = fmt.Sprint(time.Duration(sv.Field(i).Int()).Seconds())
		}
		if s := fmt.Sprint(got.Interface()); s != want {
			t.Errorf("ipc.Load.%s = %s after CopyStats, want %s", f.Name, s, want)
		}
	}
}

// TestCounterSumOrder: the counters of an id are the same whether a
// retiring process's figures are its own or, once it has exited, carried:
// its float counters (seconds) are summed in another order then, and
// 0.1+0.3+0.2 is not 0.1+(0.3+0.2) in floating point; a sample one bit
// lower reads as a counter reset.
func TestCounterSumOrder(t *testing.T) {
	gather := func(st ipc.Status) float64 {
		t.Helper()
		c, err := newCollector(func(context.Context) (ipc.Status, error) { return st, nil })
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "goes_worker_event_loop_busy_seconds_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no goes_worker_event_loop_busy_seconds_total")
		return 0
	}
	live := ipc.Worker{MasterPID: 10, ID: 0, PID: 11, Name: "web", State: StateRunning,
		Load: ipc.Load{MemoryBytes: 1, LoopBusySeconds: 0.1}}
	draining := gather(ipc.Status{Master: ipc.MasterStatus{PID: 10}, Workers: []ipc.Worker{live},
		Carried:  []ipc.Carried{{Name: "web", ID: 0, Load: ipc.Load{LoopBusySeconds: 0.3}}},
		Retiring: []ipc.Worker{{MasterPID: 10, ID: 0, PID: 9, Name: "web", Load: ipc.Load{LoopBusySeconds: 0.2}}}})
	carried := ipc.Load{LoopBusySeconds: 0.3}
	addCounters(&carried, ipc.Load{LoopBusySeconds: 0.2})
	exited := gather(ipc.Status{Master: ipc.MasterStatus{PID: 10}, Workers: []ipc.Worker{live},
		Carried: []ipc.Carried{{Name: "web", ID: 0, Load: carried}}})
	if exited != draining {
		t.Fatalf("busy seconds %v while the recycled process drains, %v once it has exited", draining, exited)
	}
}

// TestSlotLoadCarries: an id's figures add up its process's, its exited
// processes' (carried), its retiring processes' and the orphans its
// master adopted for its listener name and id (their connections too),
// the cluster node's counters included (its gauges are the process's),
// without touching the figures they were made of; the slot counts and the
// master's counts go on from the previous generations'.
func TestSlotLoadCarries(t *testing.T) {
	w := ipc.Worker{MasterPID: 10, ID: 1, PID: 11, Name: "chat", ExitCount: 1, Ops: ipc.Ops{Recycles: 2},
		Load: ipc.Load{Connections: 1, Requests: 10, Cluster: &ipc.NodeStats{Connected: true, Peers: 3, Delivered: 5, Dropped: 1}}}
	st := ipc.Status{
		Master:  ipc.MasterStatus{PID: 10},
		Workers: []ipc.Worker{w},
		Carried: []ipc.Carried{
			{Name: "chat", ID: 1, Load: ipc.Load{Requests: 100, Cluster: &ipc.NodeStats{Peers: 9, Delivered: 50}},
				Counts: ipc.SlotCounts{Recycles: 4, Exits: 1}},
			{Name: "other", ID: 1, Load: ipc.Load{Requests: 1000}, Counts: ipc.SlotCounts{Recycles: 1000}},
		},
		Previous: []ipc.Carried{{Name: "chat", ID: 1, Load: ipc.Load{Connections: 2, Requests: 7}, Counts: ipc.SlotCounts{Unresponsive: 1}}},
		Retiring: []ipc.Worker{
			{MasterPID: 10, ID: 1, PID: 9, Name: "chat", Load: ipc.Load{Connections: 1, Requests: 20, Cluster: &ipc.NodeStats{Delivered: 500}}},
			// An orphan this master adopted, of the same listener and id.
			{MasterPID: 5, AdoptedBy: 10, ID: 1, PID: 6, Name: "chat", Load: ipc.Load{Connections: 3, Requests: 40, Cluster: &ipc.NodeStats{Delivered: 5000}}},
			// One of another listener, and one another master adopted.
			{MasterPID: 5, AdoptedBy: 10, ID: 1, PID: 7, Name: "other", Load: ipc.Load{Connections: 100, Requests: 100}},
			{MasterPID: 5, AdoptedBy: 8, ID: 1, PID: 12, Name: "chat", Load: ipc.Load{Connections: 100, Requests: 100}},
		},
	}
	l := slotLoad(w, st)
	if l.Requests != 10+100+7+20+40 || l.Connections != 1+2+1+3 {
		t.Errorf("requests %d, connections %d; want 177, 7", l.Requests, l.Connections)
	}
	if c := l.Cluster; c == nil || c.Delivered != 5+50+500+5000 || c.Dropped != 1 || c.Peers != 3 || !c.Connected {
		t.Errorf("cluster %+v; want 5555 delivered, 1 dropped, the process's 3 peers", c)
	}
	if w.Cluster.Delivered != 5 || st.Carried[0].Cluster.Delivered != 50 || st.Retiring[0].Cluster.Delivered != 500 {
		t.Errorf("the figures summed were changed: %+v %+v %+v", w.Cluster, st.Carried[0].Cluster, st.Retiring[0].Cluster)
	}
	if n := carriedCounts(w, st); n != (ipc.SlotCounts{Recycles: 4, Exits: 1, Unresponsive: 1}) {
		t.Errorf("carried counts %+v", n)
	}
	ms := ipc.MasterStatus{ExitCount: 1, Exits: map[string]int{"signal: killed": 1}, MasterOps: ipc.MasterOps{
		Recycles: map[string]int{ipc.RecycleMaxRequests: 2}, Reloads: map[string]int{ipc.ReloadOK: 3}}}
	mine := ms.Recycles
	addMasterCounters(&ms, ipc.MasterStatus{ExitCount: 2, Exits: map[string]int{"signal: killed": 1, "exit status 2": 1},
		Restarts: 2, MasterOps: ipc.MasterOps{UnresponsiveTotal: 1, WatchdogKills: 1,
			Recycles: map[string]int{ipc.RecycleMaxRequests: 3, ipc.RecycleMaxMemory: 1}, Reloads: map[string]int{ipc.ReloadOK: 3}}})
	want := ipc.MasterStatus{ExitCount: 3, Exits: map[string]int{"signal: killed": 2, "exit status 2": 1}, Restarts: 2,
		MasterOps: ipc.MasterOps{UnresponsiveTotal: 1, WatchdogKills: 1,
			Recycles: map[string]int{ipc.RecycleMaxRequests: 5, ipc.RecycleMaxMemory: 1}, Reloads: map[string]int{ipc.ReloadOK: 3}}}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("master counters %+v, want %+v (reloads carried by the reload itself)", ms, want)
	}
	if mine[ipc.RecycleMaxRequests] != 2 {
		t.Errorf("the map added to was changed: %v", mine)
	}
}

// TestPreviousTotals: while the previous master has never answered (too
// busy to, within statusAskPrevious), its totals are unknown and the
// scrape fails rather than show counters without them (a reset); once
// it has answered, a request it does not answer in time gets its last
// totals, which stay after they are taken over (a status whose snapshot
// was taken before its exit reads them still); without a previous master,
// none.
func TestPreviousTotals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prev.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a master that accepts and does not answer
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	m := &master{}
	if _, _, _, err := m.previousTotals(path); !errors.Is(err, errPreviousUnknown) {
		t.Fatalf("never answered: %v, want errPreviousUnknown", err)
	}
	m.prev.last, m.prev.master, m.prev.known = []ipc.Carried{{Name: "web", Load: ipc.Load{Requests: 5}}},
		ipc.MasterStatus{Restarts: 2}, true
	last, _, ms, err := m.previousTotals(path)
	if err != nil || len(last) != 1 || last[0].Requests != 5 || ms.Restarts != 2 {
		t.Fatalf("answered before: %+v %+v %v", last, ms, err)
	}
	for range 2 {
		if last, ms := m.prev.take(); len(last) != 1 || ms.Restarts != 2 {
			t.Fatalf("taken: %+v %+v", last, ms)
		}
	}
	if last, _, _, err := m.previousTotals(""); last != nil || err != nil {
		t.Fatalf("no previous master: %+v %v", last, err)
	}
}
