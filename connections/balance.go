package connections

import (
	"time"

	"github.com/goes-project/goes/connections/internal/core"
)

// waitShare holds the standard engine's accept loop while the server is
// above its share: it looks again every core.AcceptPause, and goes on at once
// (for core.AcceptGrace, whatever its share, through *grace) when no process
// of the share accepted anything meanwhile. It returns false when the
// server drains meanwhile (the listener is closed then).
func (s *Server) waitShare(b *core.Balancer, grace *time.Time) bool {
	if b.Admit(s.open.Load()) || time.Now().Before(*grace) {
		return true
	}
	since := b.Progress()
	s.acceptPauses.Add(1)
	t := time.NewTimer(core.AcceptPause)
	defer t.Stop()
	for {
		select {
		case <-s.stopAccept:
			return false
		case <-t.C:
		}
		p := b.Progress()
		if p == since {
			*grace = time.Now().Add(core.AcceptGrace)
			return true
		}
		if b.Admit(s.open.Load()) {
			return true
		}
		since = p
		t.Reset(core.AcceptPause)
	}
}
