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

// fatal writes err as plain text.
func (r *Runner) fatal(err error) { fmt.Fprintln(r.Stderr, err) }
