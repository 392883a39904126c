package master

import (
	"fmt"
	"net"

	"github.com/goes-project/goes/internal/peercred"
)

// checkPeer allows a control (or admin socket) client running as the
// master's user or root.
func checkPeer(c *net.UnixConn) error {
	if err := peercred.Check(c); err != nil {
		return fmt.Errorf("master: control client: %w", err)
	}
	return nil
}
