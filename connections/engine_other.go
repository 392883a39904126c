//go:build !linux

package connections

// platformEngines are the event-loop engines of this platform: none, the
// standard engine serves everything.
func platformEngines(*Server) []engine { return nil }
