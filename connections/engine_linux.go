//go:build linux

package connections

import (
	"github.com/goes-project/goes/connections/internal/core"
	"github.com/goes-project/goes/connections/internal/epoll"
)

// platformEngines are the event-loop engines of this platform, in the
// order EngineAuto prefers them.
func platformEngines(rt *core.Runtime) []core.Engine { return []core.Engine{epoll.New(rt)} }
