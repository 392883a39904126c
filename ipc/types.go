package ipc

import "time"

// Message types.
const (
	// CLI → master requests.
	TypePing        = "ping"        // answer: ok with a Hello body
	TypeStatus      = "status"      // answer: ok with a Status body
	TypeConnections = "connections" // answer: ok with a []ConnInfo body
	TypeStop        = "stop"        // body StopRequest; answer ok, then EOF when the master is gone
	TypeReload      = "reload"      // answer: ok with a ReloadResult body once the new generation serves
	TypeReopen      = "reopen"      // reopen log files; answer ok

	// master → worker requests (answered with ok and a body).
	TypeStats = "stats" // answer body WorkerStats
	TypeDrain = "drain" // body DrainRequest: stop accepting, finish, exit

	// worker → master events.
	TypeReady = "ready" // the worker accepts; body Hello

	// Answers.
	TypeOK    = "ok"
	TypeError = "error"
)

// Hello identifies a process.
type Hello struct {
	PID     int    `json:"pid"`
	Version string `json:"version,omitempty"`
}

// StopRequest asks for a stop; Graceful waits for connections to finish
// (bounded by each listener's stop timeout).
type StopRequest struct {
	Graceful bool `json:"graceful"`
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
	Goroutines int `json:"goroutines"`
}

// Load is a worker's traffic and resources, reported in WorkerStats and
// passed on in its Worker entry of a Status (the fields stand at the top
// level of both in JSON).
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
	// InputShed counts the connections shed because the worker's budget
	// for unfinished input (max_input_memory) was spent.
	InputShed uint64 `json:"input_shed"`
	// Cluster is the worker's cluster Node (nil without a cluster).
	Cluster *NodeStats `json:"cluster,omitempty"`
}

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
}

// Worker is one worker process in a Status.
type Worker struct {
	ID         int `json:"id"`
	MasterPID  int `json:"master_pid"`
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
}

// ReloadRequest asks for a reload; Graceful lets the old workers drain
// without a time bound.
type ReloadRequest struct {
	Graceful bool `json:"graceful"`
}

// StatusRequest asks for a status; Local leaves out the other masters of
// the run directory (a previous generation still draining).
type StatusRequest struct {
	Local bool `json:"local"`
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
