package procenv

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Identity is what a worker learns about itself from GOES_WORKER.
type Identity struct {
	ID       int // stable, unique among the master's workers
	Listener int // index in the master's listeners
	Index    int // 0..Count-1 within the listener
	// Route is this worker process's route: the high 32 bits of its
	// connection ids (connections.Config.IDBase), and its address in a
	// cluster. Every worker start gets a new one from its master's
	// counter, which starts at a random value when a master starts cold,
	// continues across upgrades (the new master starts a reserve further,
	// so the old generation's respawns do not meet it) and is never 0.
	// Routes are unique among the live workers of a master and its
	// upgrades; masters that share a cluster draw them at random starts,
	// so a clash needs two 32-bit ranges of started workers to overlap
	// (cluster.NewNode refuses a route in use).
	Route      uint32
	Generation int // bumped by every reload
}

// String is GOES_WORKER's value: "id,listener,index,route,generation".
func (id Identity) String() string {
	return fmt.Sprintf("%d,%d,%d,%d,%d", id.ID, id.Listener, id.Index, id.Route, id.Generation)
}

// parseIdentity parses Identity.String's form.
func parseIdentity(s string) (Identity, error) {
	const want = "id,listener,index,route,generation (non-negative numbers)"
	f := strings.Split(s, ",")
	if len(f) != 5 {
		return Identity{}, malformed(keyWorker, s, want)
	}
	var n [5]uint64
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil || (i != 3 && v > math.MaxInt32) {
			return Identity{}, malformed(keyWorker, s, want)
		}
		n[i] = v
	}
	return Identity{ID: int(n[0]), Listener: int(n[1]), Index: int(n[2]), Route: uint32(n[3]), Generation: int(n[4])}, nil
}

// WorkerEnv is what a master tells a worker process through its
// environment. The worker's descriptors are CtlFD and SocketFD,
// AcceptShareFD with AcceptShare and OrphanFD with OrphanTimeout.
type WorkerEnv struct {
	// Identity is the worker's place among its master's (GOES_WORKER).
	Identity Identity
	// ConfigJSON is the master's configuration, JSON (GOES_CONFIG_JSON);
	// empty: the program's default.
	ConfigJSON string
	// LogConsole makes the worker log console lines rather than JSON
	// (GOES_LOG_CONSOLE).
	LogConsole bool
	// LogFile is the file the worker reopens on the master's word
	// (GOES_LOG_FILE); empty when it logs to an inherited stderr.
	LogFile string
	// LogPipe: the worker's stdout and stderr are a pipe its master reads
	// and copies into its own log (GOES_LOG_PIPE; master.Options.WrapOutput).
	// The master reopens the log file, not the worker; a worker whose
	// master is gone (the pipe broken) writes to LogFile itself.
	LogPipe bool
	// ClusterURL is the NATS the worker's cluster Node connects to
	// (GOES_CLUSTER_URL); empty without a cluster. It carries a secret.
	ClusterURL string
	// CloseOnDrain makes a draining worker close its connections at once
	// (GOES_UNSAFE_CLOSE_ON_DRAIN): unsafe, the negative control of the
	// reload tests.
	CloseOnDrain bool
	// AcceptShare: the worker has its listener's accept share on
	// AcceptShareFD, and AcceptSlot is its slot there (GOES_ACCEPT_SLOT,
	// set only with a share).
	AcceptShare bool
	AcceptSlot  int
	// OrphanTimeout > 0: the worker has its worker socket on OrphanFD, and
	// outlives its master that long, serving, unless a new master adopts
	// it first (GOES_ORPHAN_TIMEOUT, a Go duration; master.Options.OrphanTimeout).
	// 0: it drains as soon as its master is gone.
	OrphanTimeout time.Duration
	// TicketKeys: the worker has its master's TLS session ticket keys on
	// TicketKeysFD (GOES_TICKET_KEYS=1; the keys themselves never are in
	// the environment).
	TicketKeys bool
}

// IsWorker reports whether getenv is a worker process's environment.
func IsWorker(getenv func(string) string) bool { return getenv(keyRole) == roleWorker }

// Encode returns w as KEY=VALUE entries, GOES_ROLE=worker first. Empty
// optional values are left out.
func (w WorkerEnv) Encode() []string {
	env := []string{
		keyRole + "=" + roleWorker,
		keyWorker + "=" + w.Identity.String(),
		keyLogConsole + "=" + boolValue(w.LogConsole),
	}
	if w.ConfigJSON != "" {
		env = append(env, keyConfigJSON+"="+w.ConfigJSON)
	}
	if w.LogFile != "" {
		env = append(env, keyLogFile+"="+w.LogFile)
	}
	if w.ClusterURL != "" {
		env = append(env, keyClusterURL+"="+w.ClusterURL)
	}
	if w.CloseOnDrain {
		env = append(env, keyCloseOnDrain+"=1")
	}
	if w.LogPipe {
		env = append(env, keyLogPipe+"=1")
	}
	if w.AcceptShare {
		env = append(env, keyAcceptSlot+"="+strconv.Itoa(w.AcceptSlot))
	}
	if w.OrphanTimeout > 0 {
		env = append(env, keyOrphanTimeout+"="+w.OrphanTimeout.String())
	}
	if w.TicketKeys {
		env = append(env, keyTicketKeys+"=1")
	}
	return env
}

// DecodeWorkerEnv reads a worker's environment. It fails when getenv is
// not a worker's (IsWorker) or a value is malformed.
func DecodeWorkerEnv(getenv func(string) string) (WorkerEnv, error) {
	if !IsWorker(getenv) {
		return WorkerEnv{}, malformed(keyRole, getenv(keyRole), `"worker" in a worker process`)
	}
	var w WorkerEnv
	var err error
	if w.Identity, err = parseIdentity(getenv(keyWorker)); err != nil {
		return WorkerEnv{}, err
	}
	if w.ConfigJSON = getenv(keyConfigJSON); w.ConfigJSON != "" && !json.Valid([]byte(w.ConfigJSON)) {
		return WorkerEnv{}, malformed(keyConfigJSON, w.ConfigJSON, "JSON")
	}
	if w.LogConsole, err = parseBool(getenv, keyLogConsole); err != nil {
		return WorkerEnv{}, err
	}
	if w.CloseOnDrain, err = parseBool(getenv, keyCloseOnDrain); err != nil {
		return WorkerEnv{}, err
	}
	if w.LogPipe, err = parseBool(getenv, keyLogPipe); err != nil {
		return WorkerEnv{}, err
	}
	if w.TicketKeys, err = parseBool(getenv, keyTicketKeys); err != nil {
		return WorkerEnv{}, err
	}
	if v := getenv(keyAcceptSlot); v != "" {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return WorkerEnv{}, malformed(keyAcceptSlot, v, "a slot number")
		}
		w.AcceptShare, w.AcceptSlot = true, int(n)
	}
	if v := getenv(keyOrphanTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return WorkerEnv{}, malformed(keyOrphanTimeout, v, "a positive duration")
		}
		w.OrphanTimeout = d
	}
	w.LogFile = getenv(keyLogFile)
	w.ClusterURL = getenv(keyClusterURL)
	return w, nil
}

// Environ returns a worker's whole environment: base (the master's own,
// typically) without the variables of goes (GOES_*) and of tableflip
// (TABLEFLIP_*), then w's variables, then extra. It is the one place a
// worker's environment is built.
func (w WorkerEnv) Environ(base, extra []string) []string {
	mine := w.Encode()
	env := make([]string, 0, len(base)+len(mine)+len(extra))
	for _, kv := range base {
		if strings.HasPrefix(kv, goesPrefix) || strings.HasPrefix(kv, tableflipPrefix) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, mine...)
	return append(env, extra...)
}
