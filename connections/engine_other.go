//go:build !linux

package connections

import "github.com/goes-project/goes/connections/internal/core"

// platformEngines are the event-loop engines of this platform: none, the
// standard engine serves everything.
func platformEngines(*core.Runtime) []core.Engine { return nil }
