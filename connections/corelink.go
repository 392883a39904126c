package connections

import "github.com/goes-project/goes/connections/internal/core"

// The core's types (connections/internal/core) under the names this
// package used before they moved there; unexported, so nothing of the core
// reaches the public API.
type (
	buffer     = core.Buffer
	bufferPool = core.BufferPool

	// The engine contract's halves that need nothing of a Server.
	engineOps = core.Ops
	kickQueue = core.KickQueue
)
