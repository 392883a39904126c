//go:build !linux

package goes

// workerComm and setComm name a worker process on Linux only; elsewhere
// its name stays the binary's (its title, argv[0], is set everywhere).
func workerComm(int, *Goer) string { return "" }

func setComm(string) error { return nil }
