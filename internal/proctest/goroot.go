//go:build unix

package proctest

import "runtime"

func runtimeGOROOT() string { return runtime.GOROOT() }
