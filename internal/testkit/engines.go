package testkit

import (
	"fmt"
	"runtime"
	"testing"
)

// Engine is one way a connections.Server serves stream connections: the
// engine Name (connections.EngineStd, EngineEpoll, or "" for the automatic
// choice; spelled out here because this package imports nothing of the
// module) and, for the event loops, Pool callback goroutines
// (Config.CallbackGoroutines; 0 runs callbacks on the loop).
type Engine struct {
	Name string
	Pool int
}

// String names e as subtests and sub-benchmarks show it: "std", "epoll",
// "epoll-pool4".
func (e Engine) String() string {
	if e.Pool > 0 {
		return fmt.Sprintf("%s-pool%d", e.Name, e.Pool)
	}
	return e.Name
}

// Engines returns the engine cases every stream test runs against: the
// standard engine, and on Linux the event loops without and with a
// callback pool. The slice is new on every call.
func Engines() []Engine {
	cs := []Engine{{Name: "std"}}
	if runtime.GOOS == "linux" {
		cs = append(cs, Engine{Name: "epoll"}, Engine{Name: "epoll", Pool: 4})
	}
	return cs
}

// EachEngine runs fn as the subtest "engine=<e>" of t for every engine of
// Engines.
func EachEngine(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Helper()
	for _, e := range Engines() {
		t.Run("engine="+e.String(), func(t *testing.T) { fn(t, e) })
	}
}
