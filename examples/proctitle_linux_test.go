package examples_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goes-project/goes/internal/proctest"
)

// TestSeedTitles: ps tells a seed program's master from its workers, by
// the program's own name (issue 23): comm "<prog>" and "goes: w<id>
// <protocol>", a worker's argv "<prog>: worker <id> <scheme>://<addr>"
// and then the master's arguments.
func TestSeedTitles(t *testing.T) {
	for _, tc := range []struct{ pkg, comm, scheme string }{
		{pkg: "./tcp", comm: "tcp", scheme: "tcp"},
		{pkg: "./http", comm: "http", scheme: "http"},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			bin, runDir, p := startSeed(t, tc.pkg)
			res := proctest.Run(t, bin, "status", "--json", "--run-dir", runDir)
			var st struct {
				Master struct {
					PID int `json:"pid"`
				} `json:"master"`
				Workers []struct {
					ID  int `json:"id"`
					PID int `json:"pid"`
				} `json:"workers"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil || len(st.Workers) == 0 {
				t.Fatalf("status --json: %v\n%s", err, res)
			}
			prog := filepath.Base(bin)
			mpid := st.Master.PID
			margv, err := proctest.Argv(mpid)
			if err != nil || len(margv) == 0 || margv[0] != bin {
				t.Fatalf("master argv %q (%v), want %s ...", margv, err, bin)
			}
			if comm, err := proctest.Comm(mpid); err != nil || comm != prog {
				t.Errorf("master comm %q (%v), want %q", comm, err, prog)
			}
			var pids []int
			for _, w := range st.Workers {
				pids = append(pids, w.PID)
				wantComm := fmt.Sprintf("goes: w%d %s", w.ID, tc.comm)
				if comm, err := proctest.Comm(w.PID); err != nil || comm != wantComm {
					t.Errorf("worker %d comm %q (%v), want %q", w.ID, comm, err, wantComm)
				}
				argv, err := proctest.Argv(w.PID)
				want := fmt.Sprintf("%s: worker %d %s://%s", prog, w.ID, tc.scheme, seedAddr)
				if err != nil || len(argv) == 0 || argv[0] != want || !slices.Equal(argv[1:], margv[1:]) {
					t.Errorf("worker %d argv %q (%v), want %q and %q", w.ID, argv, err, want, margv[1:])
				}
			}
			slices.Sort(pids)
			found, err := proctest.Pgrep("-P", fmt.Sprint(mpid), "-f", "^"+prog+": worker ")
			if err != nil || !slices.Equal(found, pids) {
				t.Errorf("pgrep -f '^%s: worker ': %v (%v), want %v", prog, found, err, pids)
			}
			if res := proctest.Run(t, bin, "stop", "--run-dir", runDir); res.Code != 0 {
				t.Fatalf("stop: %s", res)
			}
			assertGone(t, p, runDir)
		})
	}
}
