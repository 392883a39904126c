package orphan

import (
	"errors"
	"os"
	"time"

	"github.com/goes-project/goes/ipc"
)

// The hand-over's vocabulary, on every platform (a worker names it); the
// sockets are Unix's (orphan.go).

// Proto is the version of the hand-over protocol. A master adopts only
// orphans that speak its Proto; Info's Proto and PID, and TypeHello, keep
// their meaning in every version, so that a master can tell an orphan of
// another version from a stale socket.
const Proto = 1

// Requests.
const (
	TypeHello  = "orphan-hello"
	TypeSocket = "orphan-socket"
	TypeDrain  = "orphan-drain"
	// TypeFinal asks for the orphan's last figures, answered when it has
	// drained, just before it exits (on a conversation of its own: the
	// answer waits for the drain). An orphan that does not know it
	// answers an error: the master keeps the figures it last had.
	TypeFinal = "orphan-final"
)

// HelloRequest opens a conversation.
type HelloRequest struct {
	Proto int `json:"proto"`
}

// Info is what an orphan says about itself.
type Info struct {
	Proto      int    `json:"proto"`
	PID        int    `json:"pid"`
	MasterPID  int    `json:"master_pid"` // the dead master's
	ID         int    `json:"id"`
	Generation int    `json:"generation"`
	Route      uint32 `json:"route"`
	// The listener: its index in the dead master's config, its name,
	// network, configured address and the key by which a master matches
	// it to its own listeners (master's inheritKey).
	Listener int    `json:"listener"`
	Name     string `json:"name"`
	Network  string `json:"network"`
	Addr     string `json:"addr"`
	Key      string `json:"key"`
	// Bound is the address the socket is bound to.
	Bound      string    `json:"bound"`
	State      string    `json:"state"`
	OrphanedAt time.Time `json:"orphaned_at"`
	// DrainAt is when the orphan drains by itself unless a master adopts
	// it first (its orphan timeout).
	DrainAt time.Time `json:"drain_at"`
}

// Handler is the orphan's side of the conversation. Its methods are
// called from the connections' goroutines, concurrently.
type Handler interface {
	Info() Info
	Stats() (ipc.WorkerStats, error)
	// Socket returns a duplicate of the listening socket; Serve closes it.
	Socket() (*os.File, error)
	Drain(req ipc.DrainRequest) error
	// Final waits until the worker has drained and returns its last
	// figures, and written, which Serve calls once the answer is written
	// (the worker exits after that, or a bound).
	Final() (st ipc.WorkerStats, written func(), err error)
}

// ErrPeer: the peer is neither root nor the same user.
var ErrPeer = errors.New("orphan: peer refused")
