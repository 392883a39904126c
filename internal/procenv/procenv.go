// Package procenv owns what goes passes across exec: the environment
// variables and inherited descriptors by which one goes process tells the
// next what it is.
//
// Three hand-offs, one type each:
//
//   - WorkerEnv: master → worker (GOES_ROLE, GOES_WORKER, GOES_CONFIG_JSON,
//     GOES_LOG_CONSOLE, GOES_LOG_FILE, GOES_LOG_PIPE, GOES_CLUSTER_URL,
//     GOES_UNSAFE_CLOSE_ON_DRAIN, GOES_ACCEPT_SLOT, GOES_ORPHAN_TIMEOUT, GOES_TICKET_KEYS),
//     with the control channel on CtlFD, the shared socket on SocketFD,
//     the accept share on AcceptShareFD, the worker socket on OrphanFD and
//     the TLS session ticket keys on TicketKeysFD.
//   - SuccessorEnv: master → the master a reload starts through tableflip
//     (GOES_GENERATION, GOES_NEXT_ROUTE, GOES_CLUSTER_ROUTE,
//     GOES_PARENT_CONTROL, GOES_RELOAD_CONFIG, GOES_RELOAD_RUN_DIR,
//     GOES_RELOADS).
//   - MasterEnv: what a master reads at start: set by the CLI that
//     daemonized it (GOES_DAEMON, GOES_DAEMON_NOTIFY, the notify pipe on
//     DaemonNotifyFD) or by the operator (GOES_UNSAFE_CLOSE_ON_DRAIN).
//
// Each type encodes to KEY=VALUE entries (Encode) and decodes from a
// getenv function (os.Getenv in a process, a map in tests); a malformed
// value is an error that wraps ErrMalformed and names the variable. No
// other package of goes names these variables (tests that look at a
// process from outside may).
//
// The values are plain data: safe for concurrent use. SuccessorEnv.Apply
// is the only function that changes the process environment.
package procenv

import (
	"errors"
	"fmt"
	"strconv"
)

// Descriptors a goes process inherits (os/exec's ExtraFiles start at 3).
const (
	// CtlFD is a worker's end of its control channel to the master.
	CtlFD = 3
	// SocketFD is a worker's copy of the shared listening (or datagram)
	// socket.
	SocketFD = 4
	// AcceptShareFD is the accept share of a worker's listener
	// (connections.AcceptShare), when WorkerEnv.AcceptShare says it has
	// one.
	AcceptShareFD = 5
	// OrphanFD is a worker's own listening Unix socket in the run
	// directory (internal/orphan), on which it answers the next master
	// once its own is gone, when WorkerEnv.OrphanTimeout says it has one.
	OrphanFD = 6
	// TicketKeysFD is the read end of a pipe holding the master's TLS
	// session ticket keys (internal/ticketkeys), when
	// WorkerEnv.TicketKeys says it has one.
	TicketKeysFD = 7
	// DaemonNotifyFD is the pipe on which a daemon reports its start to
	// the CLI that started it (MasterEnv.NotifyFD names it).
	DaemonNotifyFD = 3
)

// The variables. Every one starts with goesPrefix, which is how a worker's
// environment is cleaned of them (WorkerEnv.Environ).
const (
	goesPrefix = "GOES_"

	keyRole         = "GOES_ROLE"
	keyWorker       = "GOES_WORKER"
	keyConfigJSON   = "GOES_CONFIG_JSON"
	keyLogConsole   = "GOES_LOG_CONSOLE"
	keyLogFile      = "GOES_LOG_FILE"
	keyClusterURL   = "GOES_CLUSTER_URL"
	keyCloseOnDrain = "GOES_UNSAFE_CLOSE_ON_DRAIN"

	keyGeneration   = "GOES_GENERATION"
	keyNextRoute    = "GOES_NEXT_ROUTE"
	keyClusterRoute = "GOES_CLUSTER_ROUTE"

	keyParentControl = "GOES_PARENT_CONTROL"
	keyReloadConfig  = "GOES_RELOAD_CONFIG"
	keyReloadRunDir  = "GOES_RELOAD_RUN_DIR"
	keyReloads       = "GOES_RELOADS"
	keyLogPipe       = "GOES_LOG_PIPE"
	keyAcceptSlot    = "GOES_ACCEPT_SLOT"
	keyOrphanTimeout = "GOES_ORPHAN_TIMEOUT"
	keyTicketKeys    = "GOES_TICKET_KEYS"

	keyDaemon = "GOES_DAEMON"
	keyNotify = "GOES_DAEMON_NOTIFY"

	roleWorker = "worker"
)

// tableflipPrefix starts the variables cloudflare/tableflip sets in the
// master it starts (today one private marker, which its HasParent reads).
// A worker must not inherit them. Matching tableflip's namespace rather
// than the private name survives a rename within it; master's
// TestUpgradeHandsOver runs a real upgrade and fails if whatever tableflip
// adds to the environment reaches a worker.
const tableflipPrefix = "TABLEFLIP_"

// ErrMalformed is wrapped by every Decode error: a variable holds a value
// its reader cannot use.
var ErrMalformed = errors.New("procenv: malformed value")

func malformed(key, val, want string) error {
	return fmt.Errorf("%w: %s=%q: want %s", ErrMalformed, key, val, want)
}

// boolValue encodes a flag: "1" or "0".
func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parseBool decodes a flag: "1" is true; "0" and unset are false.
func parseBool(getenv func(string) string, key string) (bool, error) {
	switch v := getenv(key); v {
	case "1":
		return true, nil
	case "", "0":
		return false, nil
	default:
		return false, malformed(key, v, `"1" or "0"`)
	}
}

// parseUint decodes an unsigned number of at most bits bits ("" is 0).
func parseUint(getenv func(string) string, key string, bits int) (uint64, error) {
	v := getenv(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, malformed(key, v, fmt.Sprintf("a number of %d bits", bits))
	}
	return n, nil
}
