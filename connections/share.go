package connections

import (
	"os"

	"github.com/goes-project/goes/connections/internal/core"
)

// AcceptShare is memory shared by the processes that accept from one
// listening socket, one slot per process, in which each publishes how
// many connections it holds, so that a Server given a share and a slot
// (Config.AcceptShare, AcceptSlot) takes new connections only while it
// holds no more than its share of them (Config.AcceptMargin). Its methods
// are Slots, Reset, File and Close. Full doc: go doc
// github.com/goes-project/goes/connections/internal/core AcceptShare.
type AcceptShare = core.AcceptShare

// ErrAcceptShareUnsupported: shared accept counters need memory shared
// between processes, which this platform does not offer here.
var ErrAcceptShareUnsupported = core.ErrAcceptShareUnsupported

// NewAcceptShare makes a share of n slots (at least 1) in memory that
// the processes started with its File inherit: a memfd on Linux, an
// unlinked temporary file elsewhere; ErrAcceptShareUnsupported where
// there is no shared memory. The caller closes it.
func NewAcceptShare(n int) (*AcceptShare, error) { return core.NewAcceptShare(n) }

// OpenAcceptShare maps the share whose descriptor f a process inherited
// (the File of a NewAcceptShare). It takes f over: the share closes it.
// ErrAcceptShareUnsupported where there is no shared memory.
func OpenAcceptShare(f *os.File) (*AcceptShare, error) { return core.OpenAcceptShare(f) }
