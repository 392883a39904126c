package main_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestProcessTitles: ps tells the master from its workers, and each
// worker by id and listener (issue 23: every worker showed as "exe" with
// the master's arguments). The names are read where ps reads them
// (/proc/<pid>/comm and cmdline), before and after a reload.
func TestProcessTitles(t *testing.T) {
	s := newSetup(t, "10s")
	st := s.start()
	checkTitles(t, st)
	s.mustCLI("reload")
	var st2 ipc.Status
	testkit.Eventually(t, 20*time.Second, testkit.Poll, "the new generation alone", func() error {
		var err error
		if st2, err = s.status(); err != nil {
			return err
		}
		if st2.Master.PID == st.Master.PID || len(st2.Others) != 0 || len(st2.Workers) != 6 {
			return fmt.Errorf("master %d, %d others, %d workers", st2.Master.PID, len(st2.Others), len(st2.Workers))
		}
		return nil
	})
	checkTitles(t, st2)
	s.stopAndCheck(st2)
}

// checkTitles checks the names of st's master and workers, which
// newSetup's config makes: comm "goes-master" and "goes: w<id> <name>",
// argv[0] of a worker "goes-master: worker <id> [<name>] <scheme>://<addr>"
// and then the master's arguments; every process runs the master's binary,
// and pgrep -f finds the workers by their title.
func checkTitles(t *testing.T, st ipc.Status) {
	t.Helper()
	mpid := st.Master.PID
	if comm, err := proctest.Comm(mpid); err != nil || comm != "goes-master" {
		t.Errorf("master %d: comm %q (%v), want goes-master", mpid, comm, err)
	}
	margv, err := proctest.Argv(mpid)
	if err != nil || len(margv) < 2 || filepath.Base(margv[0]) != "goes-master" || margv[1] != "start" {
		t.Fatalf("master %d: argv %q (%v), want goes-master start ...", mpid, margv, err)
	}
	mexe, err := proctest.Exe(mpid)
	if err != nil {
		t.Fatal(err)
	}
	scheme := map[string]string{"web": "http", "text": "text", "udp": "udp", "ws": "websocket"}
	addrs := listenAddrs(t, st)
	var workers []int
	for _, w := range st.Workers {
		if w.MasterPID != mpid {
			continue
		}
		workers = append(workers, w.PID)
		wantComm := fmt.Sprintf("goes: w%d %s", w.ID, w.Name)
		wantComm = wantComm[:min(len(wantComm), 15)]
		if comm, err := proctest.Comm(w.PID); err != nil || comm != wantComm {
			t.Errorf("worker %d (pid %d): comm %q (%v), want %q", w.ID, w.PID, comm, err, wantComm)
		}
		argv, err := proctest.Argv(w.PID)
		wantTitle := fmt.Sprintf("goes-master: worker %d [%s] %s://%s", w.ID, w.Name, scheme[w.Name], addrs[w.Name])
		if err != nil || len(argv) == 0 || argv[0] != wantTitle || !slices.Equal(argv[1:], margv[1:]) {
			t.Errorf("worker %d (pid %d): argv %q (%v), want %q and the master's arguments %q", w.ID, w.PID, argv, err, wantTitle, margv[1:])
		}
		if exe, err := proctest.Exe(w.PID); err != nil || exe != mexe {
			t.Errorf("worker %d (pid %d) runs %q (%v), its master %q", w.ID, w.PID, exe, err, mexe)
		}
	}
	if len(workers) != 6 {
		t.Fatalf("%d workers of master %d in status, want 6: %+v", len(workers), mpid, st.Workers)
	}
	slices.Sort(workers)
	// The children of this master that pgrep -f finds by title are its
	// workers; pgrep -f over the whole machine (other tests' masters too)
	// finds them all, and not the master.
	mine, err := proctest.Pgrep("-P", fmt.Sprint(mpid), "-f", "^goes-master: worker ")
	if err != nil || !slices.Equal(mine, workers) {
		t.Errorf("pgrep -P %d -f '^goes-master: worker ': %v (%v), want the workers %v", mpid, mine, err, workers)
	}
	all, err := proctest.Pgrep("-f", "goes-master: worker")
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range workers {
		if !slices.Contains(all, pid) {
			t.Errorf("pgrep -f 'goes-master: worker' misses worker pid %d: %v", pid, all)
		}
	}
	if slices.Contains(all, mpid) {
		t.Errorf("pgrep -f 'goes-master: worker' finds the master %d", mpid)
	}
	// pgrep without -f matches the name: the master's is the program's.
	masters, err := proctest.Pgrep("-x", regexp.QuoteMeta("goes-master"))
	if err != nil || !slices.Contains(masters, mpid) || slices.ContainsFunc(workers, func(p int) bool { return slices.Contains(masters, p) }) {
		t.Errorf("pgrep -x goes-master: %v (%v), want the master %d and no worker", masters, err, mpid)
	}
}
