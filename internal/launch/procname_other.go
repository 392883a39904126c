//go:build !linux

package launch

// CommMax is the length of a process name.
const CommMax = 15

// WorkerComm and SetComm name a worker process on Linux only; elsewhere
// its name stays the binary's (its title, argv[0], is set everywhere).
func WorkerComm(int, string) string { return "" }

// SetComm does nothing off Linux.
func SetComm(string) error { return nil }
