package ipc

import "time"

// Message types.
const (
	// CLI → master requests.
	TypePing        = "ping"        // answer: ok with a Hello body
	TypeStatus      = "status"      // answer: ok with a Status body
	TypeConnections = "connections" // answer: ok with a []ConnInfo body
	TypeStop        = "stop"        // body StopRequest; answer ok (a Hello), then EOF when the master is gone (TypeProgress frames meanwhile, if asked)
	TypeReload      = "reload"      // body ReloadRequest; answer: ok with a ReloadResult body once the new generation serves (TypeProgress frames before, if asked)
	TypeReopen      = "reopen"      // reopen log files; answer ok
	// TypeProfile asks for a profile of a worker (body ProfileRequest).
	// The master answers with a stream of ok frames of the same ID, each
	// with a ProfileChunk body, the last one with More false; a worker
	// answers with one ProfileChunk and the master reads the rest with
	// TypeProfileRead.
	TypeProfile = "profile"
	// TypeProgress is a frame a master sends, every second or so, to a
	// stop or reload request that asked for it (StopRequest.Progress,
	// ReloadRequest.Progress) while the request waits: body Progress,
	// the request's ID. A master that sends them says so in its Hello.
	TypeProgress = "progress"

	// master → worker requests (answered with ok and a body).
	TypeStats = "stats" // answer body WorkerStats
	TypeDrain = "drain" // body DrainRequest: stop accepting, finish, exit
	// TypeProfileRead reads on in a profile a worker holds (body
	// ProfileRead); answer body ProfileChunk.
	TypeProfileRead = "profile_read"

	// worker → master events.
	TypeReady = "ready" // the worker accepts; body Hello
	// TypeFinal: the worker's last figures (body WorkerStats), sent as it
	// exits, so that its master folds them into the id's counters.
	TypeFinal = "final"
	// TypeTicketKeys: master → worker, body TicketKeys: serve TLS with
	// these session ticket keys from now on (a rotation).
	TypeTicketKeys = "ticket_keys"

	// Operations: recycling and reload errors.
	TypeRecycle = "recycle" // worker → master event: body RecycleRequest, replace me
	// TypeUpgradeFailed: a master started by a reload that fails before it
	// serves tells the master that started it why (body UpgradeFailure);
	// answer ok.
	TypeUpgradeFailed = "upgrade-failed"

	// Answers.
	TypeOK    = "ok"
	TypeError = "error"
)

// Hello identifies a process.
type Hello struct {
	PID     int    `json:"pid"`
	Version string `json:"version,omitempty"`
	// Progress: this master sends TypeProgress frames to the stop and
	// reload requests that ask for them (a master of an older version
	// sends none: its CLI waits for it without that heartbeat).
	Progress bool `json:"progress,omitempty"`
	// RefusedReloads: this master understands ReloadRequest.Refused (one
	// of an older version would take such a request for a reload).
	RefusedReloads bool `json:"refused_reloads,omitempty"`
}

// Progress is how a stop or a reload goes, sent while the CLI waits
// (TypeProgress). Each frame proves the master's run loop alive.
type Progress struct {
	PID int `json:"pid"`
	// State is the master's (running while a reload starts the new
	// master; stopping while it drains or stops).
	State string `json:"state"`
	// Workers is the number of worker processes left; Connections the
	// sum of their connections as they last reported them.
	Workers     int   `json:"workers"`
	Connections int64 `json:"connections"`
	// Seconds since the request came.
	Seconds float64 `json:"seconds"`
	// Note says what the master waits for, if anything more than its
	// workers ("the new master starts").
	Note string `json:"note,omitempty"`
}

// StopRequest asks for a stop; Graceful waits for connections to finish
// (bounded by each listener's stop timeout).
type StopRequest struct {
	Graceful bool `json:"graceful"`
	// Progress asks for TypeProgress frames until the master is gone.
	Progress bool `json:"progress,omitempty"`
}

// DrainRequest asks a worker to stop accepting and exit once its
// connections are gone or Timeout has passed (0: no bound). Reload says the
// drain is part of a reload (OnWorkerReload runs).
type DrainRequest struct {
	Timeout time.Duration `json:"timeout_ns"`
	Reload  bool          `json:"reload,omitempty"`
}

// WorkerStats is what a worker reports about itself.
type WorkerStats struct {
	PID   int    `json:"pid"`
	State string `json:"state"`
	Load
}

// Load is a worker's traffic and resources, reported in WorkerStats and
// passed on in its Worker entry of a Status (the fields stand at the top
// level of both in JSON). The figures of connections.Stats come by name
// (CopyStats, stats.go).
type Load struct {
	Connections int64   `json:"connections"`
	Accepted    uint64  `json:"accepted"`
	Requests    uint64  `json:"requests"`
	QPS         float64 `json:"qps"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
	Errors      uint64  `json:"errors"`
	MemoryBytes uint64  `json:"memory_bytes"`
	// Timers is the number of user timers (Goer.AddTimer) pending.
	Timers int `json:"timers"`
	// Closed counts the connections the worker closed by a timeout rule
	// since it started, by reason: "header_timeout", "body_timeout",
	// "body_min_rate", "keepalive_timeout", "send_timeout",
	// "idle_timeout" (connections.Closed...). A reason that never fired
	// is absent.
	Closed map[string]uint64 `json:"closed,omitempty"`
	// InputShed counts the connections shed because the worker's budget
	// for unfinished input (max_input_memory) was spent.
	InputShed uint64 `json:"input_shed"`
	// AcceptPauses counts the times an event loop (or the standard
	// engine's accept loop) of the worker stopped accepting for a moment
	// because the worker held more than its share of its listener's
	// connections (accept_margin).
	AcceptPauses uint64 `json:"accept_pauses"`
	// AccessLogDropped counts the access log entries the worker dropped
	// because the log's queue was full (access_log).
	AccessLogDropped uint64 `json:"access_log_dropped"`
	// IOUringSends counts the writes the worker's event loops made in
	// io_uring batches (0 where io_uring is off or not allowed).
	IOUringSends uint64 `json:"io_uring_sends"`
	// Writes counts the worker's writes to stream sockets (pipelined
	// answers share one; IOUringSends are some of them).
	Writes uint64 `json:"writes"`
	// InputHeld is the memory the worker holds for unfinished input now
	// (bounded by max_input_memory).
	InputHeld int64 `json:"input_held"`
	// LoopBusySeconds is the time the worker's event loops spent handling
	// events rather than waiting, summed over its loops (0 where no event
	// loop runs: UDP, and TLS off Linux).
	LoopBusySeconds float64 `json:"loop_busy_seconds,omitempty"`
	// Cluster is the worker's cluster Node (nil without a cluster).
	Cluster *NodeStats `json:"cluster,omitempty"`
	// RequestDuration is the time the worker's OnMessage callbacks took,
	// from the callback's start to its return (nil from a worker that
	// does not measure it).
	RequestDuration *Histogram `json:"request_duration,omitempty"`

	// BadInput counts connections closed for input their protocol refused
	// (malformed, over the packet limit) and datagrams dropped for it;
	// Panics the panics recovered from callbacks; SendBufferFull the sends
	// dropped at the send-buffer limit. Errors counts them all together.
	BadInput       uint64 `json:"bad_input"`
	Panics         uint64 `json:"panics"`
	SendBufferFull uint64 `json:"send_buffer_full"`
	// CPUSeconds is the processor time the worker has used (user and
	// system); Goroutines the goroutines it runs.
	CPUSeconds float64 `json:"cpu_seconds"`
	Goroutines int     `json:"goroutines"`

	// TLSHandshakes counts a TLS listener's handshakes since the worker
	// started, by result (TLSHandshakeOK, TLSHandshakeFailed: closed
	// before it completed); TLSResumed the completed ones that resumed a
	// session. Absent and 0 for other listeners.
	TLSHandshakes map[string]uint64 `json:"tls_handshakes,omitempty"`
	TLSResumed    uint64            `json:"tls_resumed,omitempty"`
	// TLSConnections are a TLS listener's connections open now whose
	// handshake has completed (Connections counts those still in their
	// handshake too).
	TLSConnections int64 `json:"tls_connections,omitempty"`
	// TLSHandshakeDuration is the time a TLS listener's completed
	// handshakes took, from the accept (buckets
	// TLSHandshakeDurationBuckets; nil for other listeners and for a
	// listener whose handshakes the standard engine runs).
	TLSHandshakeDuration *Histogram `json:"tls_handshake_duration,omitempty"`
	// LoopLag is the event-loop lag of the worker's listener: its event
	// loops' passes by duration (connections.Server.LoopLag), in the
	// buckets of LoopLagBuckets; nil on the standard engine.
	LoopLag *Histogram `json:"loop_lag,omitempty"`
}

// The results of Load.TLSHandshakes.
const (
	TLSHandshakeOK     = "ok"
	TLSHandshakeFailed = "failed"
)

// NodeStats describe a worker's cluster Node (see cluster.Stats).
type NodeStats struct {
	Name        string `json:"name"`
	Connected   bool   `json:"connected"`
	Peers       int    `json:"peers"`
	Connections int    `json:"connections"`
	Topics      int    `json:"topics"`
	Delivered   uint64 `json:"delivered"`
	NotHere     uint64 `json:"not_here"`
	SendErrors  uint64 `json:"send_errors"`
	Malformed   uint64 `json:"malformed"`
	Dropped     uint64 `json:"dropped"`
}

// ClusterInfo describes the master's side of the cluster.
type ClusterInfo struct {
	// URL is the NATS the workers connect to.
	URL string `json:"url"`
	// Embedded says the master runs that NATS server itself.
	Embedded bool `json:"embedded"`
	// Prefix namespaces the cluster's subjects.
	Prefix string `json:"prefix"`
	// Routes counts the embedded server's routes to other servers (a
	// previous generation's during an upgrade).
	Routes int `json:"routes"`
}

// ConnInfo describes one connection of a worker.
type ConnInfo struct {
	Worker     int       `json:"worker"`
	PID        int       `json:"pid"`
	ID         uint64    `json:"id"`
	Transport  string    `json:"transport"`
	Protocol   string    `json:"protocol"`
	LocalAddr  string    `json:"local_addr"`
	RemoteAddr string    `json:"remote_addr"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	SendBuffer int       `json:"send_buffer"`
	CreatedAt  time.Time `json:"created_at"`
	AgeSeconds float64   `json:"age_seconds"`
	State      string    `json:"state"`
}

// Status is the answer to a status request. During an upgrade, Others
// lists the other masters of the run directory (the old generation
// draining, or the new one starting), and Workers holds their workers too
// (see Worker.MasterPID).
type Status struct {
	Master  MasterStatus   `json:"master"`
	Workers []Worker       `json:"workers"`
	Others  []MasterStatus `json:"other_masters,omitempty"`
	// Retiring are the processes that a recycle replaced and that still
	// drain (State "draining"; their id is served by the entry of Workers
	// with the same ID and MasterPID). Not in Workers, which has one entry
	// per id and master. The orphans of a master that died, which this
	// master adopted, are there too, under the dead master's pid (State
	// "orphan" until they are told to drain).
	Retiring []Worker `json:"retiring,omitempty"`
	// Carried are the counters of the processes of this master's worker
	// ids that have exited (recycled, restarted), per id: the final
	// figures they reported. The metrics of an id are its Carried, its
	// process's and its retiring processes' figures together, so that
	// they only grow while the master runs.
	// the previous generations' totals, which a master takes over when
	// the master before it exits, are there too.
	Carried []Carried `json:"carried,omitempty"`
	// Previous, when asked for (StatusRequest.Totals), are the totals of
	// the previous generation while it drains, per listener name and id:
	// its counters and its open connections, which the metrics of this
	// master's ids include until it has exited (then they are Carried).
	Previous []Carried `json:"previous,omitempty"`
	// PreviousDraining, with Previous, is the number of the previous
	// generation's worker processes that still drain.
	PreviousDraining int `json:"previous_draining,omitempty"`
}

// Carried are the summed counters of a worker id's exited processes (by
// listener name and id).
type Carried struct {
	Name string `json:"name"`
	ID   int    `json:"id"`
	Load
	// Counts, of a previous generation's id, are the counts its masters
	// kept of the id's processes.
	Counts SlotCounts `json:"counts,omitzero"`
}

// SlotCounts are the counts a master keeps of a worker id's processes
// (Worker.ExitCount, Ops.Unresponsive, Ops.WatchdogKills, Ops.Recycles),
// which the next generation's master carries on with.
type SlotCounts struct {
	Exits         int `json:"exits,omitempty"`
	Unresponsive  int `json:"unresponsive,omitempty"`
	WatchdogKills int `json:"watchdog_kills,omitempty"`
	Recycles      int `json:"recycles,omitempty"`
}

// Add adds o to c.
func (c *SlotCounts) Add(o SlotCounts) {
	c.Exits += o.Exits
	c.Unresponsive += o.Unresponsive
	c.WatchdogKills += o.WatchdogKills
	c.Recycles += o.Recycles
}

// Counts are w's slot counts.
func (w *Worker) Counts() SlotCounts {
	return SlotCounts{Exits: w.ExitCount, Unresponsive: w.Unresponsive, WatchdogKills: w.WatchdogKills, Recycles: w.Recycles}
}

// AddCounts adds c to w's slot counts.
func (w *Worker) AddCounts(c SlotCounts) {
	w.ExitCount += c.Exits
	w.Unresponsive += c.Unresponsive
	w.WatchdogKills += c.WatchdogKills
	w.Recycles += c.Recycles
}

// MasterStatus describes the master.
type MasterStatus struct {
	PID           int       `json:"pid"`
	Version       string    `json:"version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	State         string    `json:"state"`
	RunDir        string    `json:"run_dir"`
	Generation    int       `json:"generation"`
	Workers       int       `json:"workers"`
	ExitCount     int       `json:"exit_count"`
	// Cluster is set when the workers have a cluster.
	Cluster *ClusterInfo `json:"cluster,omitempty"`
	MasterOps

	// Exits counts the workers' unexpected exits by how they ended (the
	// process state, "exit status 2", "signal: killed").
	Exits map[string]int `json:"exits,omitempty"`
	// Restarts counts the workers started again after an unexpected exit.
	Restarts int `json:"restarts"`
	// ReloadSeconds is how long the reload that started this master took,
	// from its start to serving (0: a reload did not start it).
	ReloadSeconds float64 `json:"reload_seconds,omitempty"`
	// DrainSeconds is how long the previous generation took to drain once
	// this master served (0: none, or still draining).
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	// Admin is the address the admin endpoint is bound to (empty: none).
	Admin string `json:"admin,omitempty"`
}

// MasterOps are the master's watchdog, recycling and reload figures (at
// the top level of MasterStatus in JSON). The counters count since this
// master started, and go on from the previous generation's master's once
// it has exited (Reloads: handed on by the reload itself).
type MasterOps struct {
	// Unresponsive is the number of this master's worker processes
	// unresponsive now; UnresponsiveTotal counts the times one was found
	// so, WatchdogKills the ones killed for it.
	Unresponsive      int `json:"unresponsive"`
	UnresponsiveTotal int `json:"unresponsive_total"`
	WatchdogKills     int `json:"watchdog_kills"`
	// Recycles counts the workers replaced by recycling, by reason
	// (RecycleMaxRequests, RecycleMaxMemory).
	Recycles map[string]int `json:"recycles,omitempty"`
	// Reloads counts reloads by result (ReloadOK, ReloadFailed,
	// ReloadRefused), over the generations of this run directory.
	Reloads map[string]int `json:"reloads,omitempty"`
	// LastReloadError says why the last reload this master tried failed.
	LastReloadError string `json:"last_reload_error,omitempty"`
	// Watchdog is the liveness check in force.
	Watchdog WatchdogSettings `json:"watchdog"`
}

// WatchdogSettings are a master's liveness check (see master.Options):
// every IntervalSeconds it asks each worker for its figures; one silent
// for UnresponsiveSeconds is unresponsive, and one silent for
// KillSeconds is killed and replaced (0: never).
type WatchdogSettings struct {
	IntervalSeconds     float64 `json:"interval_seconds"`
	UnresponsiveSeconds float64 `json:"unresponsive_seconds"`
	KillSeconds         float64 `json:"kill_seconds"`
}

// Worker is one worker process in a Status.
type Worker struct {
	ID        int `json:"id"`
	MasterPID int `json:"master_pid"`
	// AdoptedBy, for an orphan of a dead master among a Status's
	// Retiring, is the pid of the master that adopted it: the metrics of
	// that master's worker id of the same listener name and ID include
	// the orphan's figures while it drains, and its counters once it has
	// exited.
	AdoptedBy  int `json:"adopted_by,omitempty"`
	Index      int `json:"index"`
	Generation int `json:"generation"`
	PID        int `json:"pid"`
	// Route is the high 32 bits of the ids of this process's connections
	// (id>>32), and its address in the cluster.
	Route uint32 `json:"route,omitempty"`
	Name  string `json:"name"`
	// Listen is "network://address" with the address the socket is bound
	// to: the port the system chose when the config asks for port 0.
	Listen    string    `json:"listen"`
	Transport string    `json:"transport"`
	Protocol  string    `json:"protocol"`
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	Load
	ExitCount int    `json:"exit_count"`
	LastExit  string `json:"last_exit,omitempty"`
	Ops
}

// Ops is what the master's watchdog and recycling tell about a worker id,
// in its Worker entry of a Status (the fields stand at the top level in
// JSON).
type Ops struct {
	// SilentSeconds is how long the process has not answered its master:
	// at most about the watchdog interval while it is healthy. A worker
	// silent for the unresponsive timeout has State "unresponsive" and
	// shows the figures of its last answer (LastSeen).
	SilentSeconds float64 `json:"silent_seconds"`
	// LastSeen is when the process last answered (zero before its first
	// answer).
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Unresponsive counts the times a process of this id was found
	// unresponsive; WatchdogKills, the times one was killed for it and
	// replaced.
	Unresponsive  int `json:"unresponsive_count"`
	WatchdogKills int `json:"watchdog_kills"`
	// Recycles counts the replacements of this id's process by recycling
	// (max_requests, max_memory); LastRecycle is the reason of the last
	// one (RecycleMaxRequests or RecycleMaxMemory).
	Recycles    int    `json:"recycles"`
	LastRecycle string `json:"last_recycle,omitempty"`
}

// Recycle reasons (RecycleRequest.Reason, Ops.LastRecycle, the keys of
// MasterStatus.Recycles).
const (
	RecycleMaxRequests = "max_requests"
	RecycleMaxMemory   = "max_memory"
)

// RecycleRequest is a worker asking its master to be replaced: it has
// served Requests (limit Limit for RecycleMaxRequests) or holds
// MemoryBytes of resident memory (limit Limit for RecycleMaxMemory). The
// master starts a replacement under the same id and tells this worker to
// drain once the replacement accepts.
type RecycleRequest struct {
	Reason      string `json:"reason"`
	Requests    uint64 `json:"requests"`
	MemoryBytes uint64 `json:"memory_bytes"`
	Limit       uint64 `json:"limit"`
}

// UpgradeFailure is the error that stopped a master started by a reload,
// sent to the master that started it (TypeUpgradeFailed).
type UpgradeFailure struct {
	PID   int    `json:"pid"`
	Error string `json:"error"`
}

// Reload results (the keys of MasterStatus.Reloads).
const (
	ReloadOK      = "ok"      // a new master took over
	ReloadFailed  = "failed"  // the new master failed; the old one serves on
	ReloadRefused = "refused" // not started: a reload in progress, a master stopping, ...
)

// ReloadRequest asks for a reload; Graceful lets the old workers drain
// without a time bound. Config, an absolute path, is the config file the
// new generation runs (empty: the one this generation runs).
type ReloadRequest struct {
	Graceful bool   `json:"graceful"`
	Config   string `json:"config,omitempty"`
	// Progress asks for TypeProgress frames until the answer.
	Progress bool `json:"progress,omitempty"`
	// Refused, when set, says that the CLI refused this reload before
	// asking for it (a config that does not check), and why: the master
	// starts nothing, logs it and counts it as refused.
	Refused string `json:"refused,omitempty"`
}

// StatusRequest asks for a status; Local leaves out the other masters of
// the run directory (a previous generation still draining).
type StatusRequest struct {
	Local bool `json:"local"`
	// Totals asks for Status.Previous too (the admin endpoint's metrics).
	Totals bool `json:"totals,omitempty"`
}

// ReloadResult is the answer to a reload: the master that serves now.
type ReloadResult struct {
	PID        int    `json:"pid"`
	Version    string `json:"version"`
	Generation int    `json:"generation"`
	// Drained is the number of old workers told to drain.
	Drained int `json:"drained"`
	// OldPID is the previous master's pid after an upgrade (0 when only
	// the workers were replaced).
	OldPID int `json:"old_pid,omitempty"`
}

// ProfileRequest asks for a profile of worker Worker (see TypeProfile).
type ProfileRequest struct {
	// Worker is the worker's id (to the master; a worker ignores it).
	Worker int `json:"worker"`
	// Name is "profile" (CPU), "trace" (runtime/trace) or a runtime/pprof
	// profile: "heap", "allocs", "goroutine", "block", "mutex",
	// "threadcreate".
	Name string `json:"name"`
	// Duration is how long a CPU profile or trace runs (default 30 s for
	// profile, 1 s for trace).
	Duration time.Duration `json:"duration_ns,omitempty"`
	// Debug selects a named profile's format as net/http/pprof's debug
	// parameter does: 0 the gzipped protocol buffer, 1 or 2 text.
	Debug int `json:"debug,omitempty"`
	// GC runs a garbage collection before a heap profile.
	GC bool `json:"gc,omitempty"`
}

// ProfileChunk is a part of a profile: Data holds Total bytes from Offset.
type ProfileChunk struct {
	Data   []byte `json:"data"`
	Offset int    `json:"offset"`
	Total  int    `json:"total"`
	// More says more chunks follow.
	More bool `json:"more,omitempty"`
	// Handle names the profile a worker holds, for TypeProfileRead.
	Handle uint64 `json:"handle,omitempty"`
}

// ProfileRead asks a worker for the bytes of profile Handle from Offset.
type ProfileRead struct {
	Handle uint64 `json:"handle"`
	Offset int    `json:"offset"`
}

// TicketKeys is a TypeTicketKeys body: the master's TLS session ticket
// keys (internal/ticketkeys.Set.Encode: 32-byte keys, the newest first).
type TicketKeys struct {
	Keys []byte `json:"keys"`
}
