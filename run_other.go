//go:build !unix

package goes

import (
	"fmt"
	"runtime"
)

// run fails: the master and workers need a Unix system.
func (r *Runner) run([]string) error {
	return fmt.Errorf("%w (%s)", ErrUnsupported, runtime.GOOS)
}
