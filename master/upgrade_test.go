//go:build unix

package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/procenv"
	"github.com/goes-project/goes/ipc"
)

// testClusterRoute is what the masters of TestUpgradeHandsOver hand on as
// their cluster route (no server behind it: the master only passes it).
const testClusterRoute = "nats-route://goes:s3cret@127.0.0.1:1"

// upgradeReport is what a master of TestUpgradeHandsOver writes about
// itself at start, in master-PID.json.
type upgradeReport struct {
	HasParent bool
	Inherited procenv.SuccessorEnv
	Env       []string
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// upgradableMaster is the process of a master with an Upgrader, run dir
// dir/run; tableflip starts it again (same arguments, this process's
// environment) on reload. It reports itself in dir/master-PID.json, its
// workers in dir/worker-PID.json.
func upgradableMaster(dir string) int {
	log := zerolog.New(os.Stderr).With().Str("role", "master").Int("pid", os.Getpid()).Logger()
	upg, err := NewUpgrader(Options{ReadyTimeout: 20 * time.Second})
	if err != nil {
		log.Error().Err(err).Msg("upgrader")
		return 10
	}
	rep := upgradeReport{HasParent: upg.HasParent(), Inherited: upg.Inherited(), Env: os.Environ()}
	if err := writeJSON(filepath.Join(dir, fmt.Sprintf("master-%d.json", os.Getpid())), rep); err != nil {
		log.Error().Err(err).Msg("report")
		return 11
	}
	paths, err := PathsIn(filepath.Join(dir, "run"))
	if err != nil {
		log.Error().Err(err).Msg("paths")
		return 12
	}
	err = Run(context.Background(), Options{
		Listeners:    []Listener{{Name: "t", Network: "tcp", Addr: "127.0.0.1:0", Count: 2, StopTimeout: 5 * time.Second}},
		Paths:        paths,
		Upgrader:     upg,
		ClusterRoute: testClusterRoute,
		WorkerEnv:    func(Identity) []string { return []string{"GOES_TEST_ENV_DIR=" + dir} },
		Logger:       log,
	})
	if err != nil {
		log.Error().Err(err).Msg("run")
		return 13
	}
	return 0
}

// TestUpgradeHandsOver: a real reload through tableflip, with masters in
// processes of their own (tableflip allows one upgrader per process). The
// new master knows that a reload started it (HasParent) and has what the
// old one handed on (generation, first route, cluster route); its workers
// inherit nothing that tableflip or the hand-off added to its environment.
// This fails if tableflip stops passing the environment on, or marks its
// child with a variable that procenv.WorkerEnv.Environ does not strip, or
// stops marking it in the environment at all (then procenv's TABLEFLIP_
// rule is dead: revisit it).
func TestUpgradeHandsOver(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "masters.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	paths, err := PathsIn(filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOES_TEST_MASTER="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	oldPID := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	newPID := 0
	t.Cleanup(func() {
		cmd.Process.Kill() // a no-op once it has exited and been waited for
		// The new master is the old one's child: kill it only while it
		// still answers as itself.
		if h, err := ping(paths); err == nil && newPID != 0 && h.PID == newPID {
			syscall.Kill(newPID, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("masters' log:\n%s", b)
		}
	})

	// The first master serves.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := localStatus(paths); err == nil && st.Master.PID == oldPID && st.Master.State == StateRunning {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("master exited before it served: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("master not serving")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ans, err := paths.Request(ipc.Message{Type: ipc.TypeReload}, 60*time.Second)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	var res ipc.ReloadResult
	if err := ans.Decode(&res); err != nil {
		t.Fatal(err)
	}
	newPID = res.PID
	if res.OldPID != oldPID || newPID == oldPID || newPID <= 0 || res.Generation != 2 {
		t.Fatalf("reload result %+v (old master pid %d)", res, oldPID)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("old master: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("old master did not exit after the upgrade")
	}

	var old, cur upgradeReport
	readJSON(t, filepath.Join(dir, fmt.Sprintf("master-%d.json", oldPID)), &old)
	readJSON(t, filepath.Join(dir, fmt.Sprintf("master-%d.json", newPID)), &cur)
	if old.HasParent || old.Inherited != (procenv.SuccessorEnv{}) {
		t.Fatalf("the first master: %+v", old)
	}
	if !cur.HasParent {
		t.Fatal("the master started by the reload does not know it (HasParent false)")
	}
	if in := cur.Inherited; in.Generation != 2 || in.NextRoute == 0 || in.ClusterRoute != testClusterRoute {
		t.Fatalf("handed on: %+v", in)
	}
	// What the new master's environment has that the old one's had not:
	// tableflip's marker and the hand-off.
	had := map[string]bool{}
	for _, kv := range old.Env {
		had[kv] = true
	}
	var added []string
	fromTableflip := false
	for _, kv := range cur.Env {
		if !had[kv] {
			key, _, _ := strings.Cut(kv, "=")
			added = append(added, key)
			fromTableflip = fromTableflip || !strings.HasPrefix(key, "GOES_")
		}
	}
	if !fromTableflip {
		t.Errorf("tableflip added nothing to the new master's environment (added: %q): HasParent no longer comes from there", added)
	}

	status, err := localStatus(paths)
	if err != nil {
		t.Fatal(err)
	}
	if status.Master.PID != newPID || status.Master.Generation != 2 || len(status.Workers) != 2 {
		t.Fatalf("status after the reload: %+v", status)
	}
	for _, w := range status.Workers {
		var env []string
		readJSON(t, filepath.Join(dir, fmt.Sprintf("worker-%d.json", w.PID)), &env)
		got := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		for _, key := range append(added, "GOES_TEST_MASTER") {
			if v, ok := got[key]; ok {
				t.Errorf("worker %d inherited %s=%s", w.ID, key, v)
			}
		}
		we, err := procenv.DecodeWorkerEnv(func(k string) string { return got[k] })
		if err != nil || we.Identity.Generation != 2 || we.Identity.Route != w.Route || we.Identity.Route-cur.Inherited.NextRoute > 2 {
			t.Errorf("worker %d (status %+v): environment %+v, %v", w.ID, w, we, err)
		}
	}

	stop, _ := ipc.New(ipc.TypeStop, 1, ipc.StopRequest{})
	if _, err := paths.Request(stop, 10*time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err := ping(paths)
		if errors.Is(err, ErrNotRunning) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new master still answers after stop: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// localStatus asks the master of paths for its status, without the other
// masters of the run directory.
func localStatus(paths Paths) (ipc.Status, error) {
	req, _ := ipc.New(ipc.TypeStatus, 1, ipc.StatusRequest{Local: true})
	ans, err := paths.Request(req, 5*time.Second)
	if err != nil {
		return ipc.Status{}, err
	}
	var st ipc.Status
	err = ans.Decode(&st)
	return st, err
}

// ping asks the master of paths who it is.
func ping(paths Paths) (ipc.Hello, error) {
	ans, err := paths.Request(ipc.Message{Type: ipc.TypePing}, 2*time.Second)
	if err != nil {
		return ipc.Hello{}, err
	}
	var h ipc.Hello
	err = ans.Decode(&h)
	return h, err
}
