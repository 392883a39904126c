package proctest

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Comm is the name of process pid, as ps -o comm and top show it
// (/proc/<pid>/comm).
func Comm(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSuffix(string(b), "\n"), err
}

// Argv is the argument list of process pid, as ps -o args shows it joined
// with spaces (/proc/<pid>/cmdline).
func Argv(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00"), nil
}

// Exe is the binary process pid runs (/proc/<pid>/exe).
func Exe(pid int) (string, error) { return os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe") }

// Pgrep runs pgrep with args and returns the pids it prints (none: an
// empty list, not an error).
func Pgrep(args ...string) ([]int, error) {
	out, err := exec.Command("pgrep", args...).Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return nil, nil // nothing matched
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
