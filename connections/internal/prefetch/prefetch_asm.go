//go:build amd64 || arm64

package prefetch

// Range asks for the n bytes at addr to be loaded into the cache, a line
// at a time. It never faults, whatever addr is: an address kept as a
// uintptr (not keeping its object alive) may be given.
func Range(addr, n uintptr)
