package orphan

import (
	"errors"
	"fmt"
	"net"

	"github.com/goes-project/goes/internal/peercred"
)

// checkPeer admits root and this process's user, the rule of the
// master's control socket (internal/peercred); a refusal wraps ErrPeer.
func checkPeer(c *net.UnixConn) error {
	err := peercred.Check(c)
	if errors.Is(err, peercred.ErrRefused) {
		return fmt.Errorf("%w: %w", ErrPeer, err)
	}
	return err
}
