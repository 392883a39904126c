package launch

import (
	"os"
	"strconv"
	"unicode/utf8"
)

// commMax is the length of a process name (ps -o comm, top, pgrep without
// -f): the kernel's TASK_COMM_LEN less its NUL.
const commMax = 15

// CommMax is the length of a process name.
const CommMax = commMax

// WorkerComm is the process name of worker id serving listener: "goes:
// w<id> <listener>", cut to commMax bytes (on a UTF-8 boundary).
func WorkerComm(id int, name string) string {
	s := "goes: w" + strconv.Itoa(id) + " " + name
	for len(s) > commMax {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// SetComm names this process and each of its threads: the name of the
// thread group leader is the process's (ps -o comm, pgrep), the others'
// show in top -H and htop. Writing /proc/self/comm from any thread names
// the leader; a thread started later takes the name of the thread that
// starts it, so threads already named pass it on. A thread that exits
// meanwhile is skipped.
func SetComm(name string) error {
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		return err
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		os.WriteFile("/proc/self/task/"+t.Name()+"/comm", []byte(name), 0)
	}
	return nil
}
