package procenv

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// lookup is a getenv over KEY=VALUE entries; a later entry wins, as in
// os/exec.
func lookup(env ...string) func(string) string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func TestWorkerEnvRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		w    WorkerEnv
	}{
		{name: "minimal", w: WorkerEnv{Identity: Identity{}}},
		{name: "full", w: WorkerEnv{
			Identity:      Identity{ID: 7, Listener: 2, Index: 3, Route: 0xfedcba98, Generation: 5},
			ConfigJSON:    `{"log_level":"debug","cluster":{"prefix":"a,b=c"}}`,
			LogConsole:    true,
			LogFile:       "/var/log/goes=odd,name.log",
			ClusterURL:    "nats://goes:secret@127.0.0.1:4222,nats://127.0.0.1:4223",
			CloseOnDrain:  true,
			LogPipe:       true,
			AcceptShare:   true,
			AcceptSlot:    17,
			OrphanTimeout: 10*time.Minute + 1500*time.Millisecond,
			TicketKeys:    true,
		}},
		{name: "slot zero", w: WorkerEnv{AcceptShare: true}},
		{name: "largest numbers", w: WorkerEnv{Identity: Identity{ID: 1<<31 - 1, Listener: 1<<31 - 1, Index: 1<<31 - 1, Route: 1<<32 - 1, Generation: 1<<31 - 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.w.Encode()
			getenv := lookup(env...)
			if !IsWorker(getenv) {
				t.Fatalf("IsWorker false for %q", env)
			}
			got, err := DecodeWorkerEnv(getenv)
			if err != nil || got != tc.w {
				t.Fatalf("decoded %+v, %v\nwant %+v", got, err, tc.w)
			}
		})
	}
}

func TestWorkerEnvMalformed(t *testing.T) {
	good := WorkerEnv{Identity: Identity{ID: 1, Route: 9, Generation: 1}}.Encode()
	tests := []struct {
		name string
		env  []string
		key  string // the variable the error must name
	}{
		{name: "not a worker", env: nil, key: "GOES_ROLE"},
		{name: "other role", env: []string{"GOES_ROLE=master"}, key: "GOES_ROLE"},
		{name: "no identity", env: []string{"GOES_ROLE=worker"}, key: "GOES_WORKER"},
		{name: "short identity", env: append(good, "GOES_WORKER=1,2,3"), key: "GOES_WORKER"},
		{name: "letters", env: append(good, "GOES_WORKER=a,b,c,d,e"), key: "GOES_WORKER"},
		{name: "negative", env: append(good, "GOES_WORKER=1,2,3,4,-5"), key: "GOES_WORKER"},
		{name: "route over 32 bits", env: append(good, "GOES_WORKER=1,2,3,4294967296,5"), key: "GOES_WORKER"},
		{name: "id over int32", env: append(good, "GOES_WORKER=2147483648,2,3,4,5"), key: "GOES_WORKER"},
		{name: "generation over int32", env: append(good, "GOES_WORKER=1,2,3,4,2147483648"), key: "GOES_WORKER"},
		{name: "bad console flag", env: append(good, "GOES_LOG_CONSOLE=yes"), key: "GOES_LOG_CONSOLE"},
		{name: "bad ticket keys flag", env: append(good, "GOES_TICKET_KEYS=keys"), key: "GOES_TICKET_KEYS"},
		{name: "bad drain flag", env: append(good, "GOES_UNSAFE_CLOSE_ON_DRAIN=true"), key: "GOES_UNSAFE_CLOSE_ON_DRAIN"},
		{name: "bad pipe flag", env: append(good, "GOES_LOG_PIPE=yes"), key: "GOES_LOG_PIPE"},
		{name: "config not JSON", env: append(good, "GOES_CONFIG_JSON={oops"), key: "GOES_CONFIG_JSON"},
		{name: "negative slot", env: append(good, "GOES_ACCEPT_SLOT=-1"), key: "GOES_ACCEPT_SLOT"},
		{name: "slot letters", env: append(good, "GOES_ACCEPT_SLOT=one"), key: "GOES_ACCEPT_SLOT"},
		{name: "orphan timeout not a duration", env: append(good, "GOES_ORPHAN_TIMEOUT=600"), key: "GOES_ORPHAN_TIMEOUT"},
		{name: "orphan timeout negative", env: append(good, "GOES_ORPHAN_TIMEOUT=-1s"), key: "GOES_ORPHAN_TIMEOUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeWorkerEnv(lookup(tc.env...))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.key+"=") {
				t.Fatalf("err = %v, want ErrMalformed naming %s", err, tc.key)
			}
		})
	}
}

// TestWorkerEnviron: a worker inherits the master's environment but none
// of the variables of goes (they are the master's own: run dir, a
// predecessor's hand-off, the daemon's descriptor) nor tableflip's; then
// come its own variables and the extra ones, in that order.
func TestWorkerEnviron(t *testing.T) {
	base := []string{
		"PATH=/usr/bin",
		"GOES_RUN_DIR=/run/goes",
		"GOES_GENERATION=4",
		"GOES_DAEMON_NOTIFY=3",
		"GOES_ROLE=master-ish",
		"TABLEFLIP_MARKER=yes",
		"TABLEFLIP_SOMETHING_NEW=1",
		"HOME=/home/u",
		"NOT_GOES_X=kept",
	}
	w := WorkerEnv{Identity: Identity{ID: 2, Route: 77, Generation: 4}, LogFile: "/l"}
	got := w.Environ(base, []string{"EXTRA=1", "GOES_TEST_MODE=crash"})
	want := append([]string{"PATH=/usr/bin", "HOME=/home/u", "NOT_GOES_X=kept"}, w.Encode()...)
	want = append(want, "EXTRA=1", "GOES_TEST_MODE=crash")
	if !slices.Equal(got, want) {
		t.Fatalf("environ\n got %q\nwant %q", got, want)
	}
	back, err := DecodeWorkerEnv(lookup(got...))
	if err != nil || back != w {
		t.Fatalf("decoded %+v, %v", back, err)
	}
}

func TestSuccessorEnvRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    SuccessorEnv
		n    int // entries encoded
	}{
		{name: "nothing handed", s: SuccessorEnv{}, n: 0},
		{name: "no cluster", s: SuccessorEnv{Generation: 2, NextRoute: 65537}, n: 2},
		{name: "full", s: SuccessorEnv{Generation: 1<<31 - 1, NextRoute: 1<<32 - 1, ClusterRoute: "nats-route://goes:s3cret@127.0.0.1:41234",
			ParentControl: "/run/goes/goes-41.sock", ConfigFile: "/etc/goes/other,odd=name.json", RunDir: "/run/goes",
			Reloads: ReloadCounts{OK: 1<<31 - 1, Failed: 2, Refused: 3}}, n: 7},
		{name: "reloads only", s: SuccessorEnv{Reloads: ReloadCounts{Refused: 1}}, n: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.s.Encode()
			if len(env) != tc.n {
				t.Fatalf("encoded %q, want %d entries", env, tc.n)
			}
			got, err := DecodeSuccessorEnv(lookup(env...))
			if err != nil || got != tc.s {
				t.Fatalf("decoded %+v, %v\nwant %+v", got, err, tc.s)
			}
		})
	}
}

func TestSuccessorEnvMalformed(t *testing.T) {
	tests := []struct {
		name string
		kv   string
	}{
		{name: "generation zero", kv: "GOES_GENERATION=0"},
		{name: "generation negative", kv: "GOES_GENERATION=-2"},
		{name: "generation letters", kv: "GOES_GENERATION=two"},
		{name: "generation too big", kv: "GOES_GENERATION=2147483648"},
		{name: "route too big", kv: "GOES_NEXT_ROUTE=4294967296"},
		{name: "route negative", kv: "GOES_NEXT_ROUTE=-1"},
		{name: "route hex", kv: "GOES_NEXT_ROUTE=0x10"},
		{name: "cluster route no scheme", kv: "GOES_CLUSTER_ROUTE=127.0.0.1:4248"},
		{name: "cluster route no host", kv: "GOES_CLUSTER_ROUTE=nats-route://"},
		{name: "cluster route unparsable", kv: "GOES_CLUSTER_ROUTE=nats://goes:pw@[::1"},
		{name: "parent control relative", kv: "GOES_PARENT_CONTROL=run/goes-1.sock"},
		{name: "config relative", kv: "GOES_RELOAD_CONFIG=goes.json"},
		{name: "run dir relative", kv: "GOES_RELOAD_RUN_DIR=run"},
		{name: "reloads short", kv: "GOES_RELOADS=1,2"},
		{name: "reloads negative", kv: "GOES_RELOADS=1,-2,3"},
		{name: "reloads too big", kv: "GOES_RELOADS=1,2,2147483648"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, _ := strings.Cut(tc.kv, "=")
			_, err := DecodeSuccessorEnv(lookup(tc.kv))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), key+"=") {
				t.Fatalf("err = %v, want ErrMalformed naming %s", err, key)
			}
		})
	}
	// A cluster route's password never shows in the error.
	_, err := DecodeSuccessorEnv(lookup("GOES_CLUSTER_ROUTE=nats-route://goes:s3cret@"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v", err)
	}
}

// TestSuccessorEnvApply: Apply leaves in the process environment exactly
// what the next master must inherit, whatever was there before.
func TestSuccessorEnvApply(t *testing.T) {
	// t.Setenv restores every one of these after the test.
	t.Setenv("GOES_GENERATION", "3")
	t.Setenv("GOES_NEXT_ROUTE", "12")
	t.Setenv("GOES_CLUSTER_ROUTE", "nats-route://old:pw@127.0.0.1:1")
	t.Setenv("GOES_RELOAD_CONFIG", "/etc/older.json")
	t.Setenv("GOES_PARENT_CONTROL", "/run/goes/goes-1.sock")
	t.Setenv("GOES_DAEMON_NOTIFY", "3")
	t.Setenv("GOES_DAEMON", "1")

	next := SuccessorEnv{Generation: 4, NextRoute: 70000, RunDir: "/run/goes", Reloads: ReloadCounts{OK: 3}}
	if err := next.Apply(); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSuccessorEnv(os.Getenv)
	if err != nil || got != next {
		t.Fatalf("after Apply: %+v, %v; want %+v", got, err, next)
	}
	for _, key := range []string{"GOES_CLUSTER_ROUTE", "GOES_RELOAD_CONFIG", "GOES_PARENT_CONTROL"} {
		if _, set := os.LookupEnv(key); set {
			t.Errorf("the previous generation's %s is handed on", key)
		}
	}
	m, err := DecodeMasterEnv(os.Getenv)
	if err != nil || m != (MasterEnv{Daemon: true}) {
		t.Errorf("master env after Apply: %+v, %v; want a daemon without a notify descriptor", m, err)
	}
}

func TestMasterEnvRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    MasterEnv
	}{
		{name: "foreground", e: MasterEnv{}},
		{name: "daemon start", e: MasterEnv{Daemon: true, NotifyFD: DaemonNotifyFD}},
		{name: "daemon after a reload", e: MasterEnv{Daemon: true}},
		{name: "unsafe drain", e: MasterEnv{CloseOnDrain: true, NotifyFD: 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeMasterEnv(lookup(tc.e.Encode()...))
			if err != nil || got != tc.e {
				t.Fatalf("decoded %+v, %v\nwant %+v", got, err, tc.e)
			}
		})
	}
}

func TestMasterEnvMalformed(t *testing.T) {
	for _, kv := range []string{
		"GOES_DAEMON=yes",
		"GOES_DAEMON_NOTIFY=2",
		"GOES_DAEMON_NOTIFY=-1",
		"GOES_DAEMON_NOTIFY=three",
		"GOES_UNSAFE_CLOSE_ON_DRAIN=on",
	} {
		t.Run(kv, func(t *testing.T) {
			key, _, _ := strings.Cut(kv, "=")
			_, err := DecodeMasterEnv(lookup(kv))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), key+"=") {
				t.Fatalf("err = %v, want ErrMalformed naming %s", err, key)
			}
		})
	}
}
