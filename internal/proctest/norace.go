//go:build !race

package proctest

// Race is true when this binary was built with the race detector.
const Race = false
