//go:build !unix

package worker

// cpuSeconds is not measured here.
func cpuSeconds() float64 { return 0 }
