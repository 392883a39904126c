package goes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/goes-project/goes/cluster"
)

// Config is the process configuration read from a --config file (JSON).
// Every field is optional. A program built on the library takes its
// listeners from code; Listeners in its config override the Goers by
// position (listen address, count, stop timeout, TLS files). goes-master
// takes its listeners from the config only.
//
//	{
//	  "run_dir": "/run/goes",
//	  "log_level": "info",
//	  "log_file": "/var/log/goes.log",
//	  "user": "www-data", "group": "www-data",
//	  "stop_timeout": "30s",
//	  "ready_timeout": "30s",
//	  "cluster": {"enabled": true},
//	  "admin": "127.0.0.1:8084", "admin_max_connections": 64,
//	  "admin_token_file": "/etc/goes/admin.token",
//	  "unresponsive_timeout": "5s", "kill_unresponsive": "30s",
//	  "orphan_timeout": "10m",
//	  "listeners": [
//	    {"name": "web", "listen": "http://0.0.0.0:8080", "count": 4, "handler": "hello"},
//	    {"listen": "text://127.0.0.1:8082", "handler": "echo"},
//	    {"listen": "tls://0.0.0.0:8443", "cert_file": "cert.pem", "key_file": "key.pem"}
//	  ]
//	}
type Config struct {
	// RunDir holds the pid file, control socket, lock and log file
	// (default: $XDG_RUNTIME_DIR/goes/NAME or /tmp/goes-UID/NAME).
	RunDir string `json:"run_dir,omitempty"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `json:"log_level,omitempty"`
	// LogFile is where a daemon logs (default RUN_DIR/goes.log).
	LogFile string `json:"log_file,omitempty"`
	// User and Group run the workers as another user (the master must run
	// as root; it opens the sockets before the workers drop privileges).
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// StopTimeout bounds a graceful stop or reload drain of every listener
	// that sets none itself (default 30s).
	StopTimeout Duration `json:"stop_timeout,omitempty"`
	// ReadyTimeout bounds a worker's start (default 30s).
	ReadyTimeout Duration `json:"ready_timeout,omitempty"`
	// UpgradeTimeout bounds a new master's start in a reload (default
	// ready_timeout + 10s); past it the new master is killed and the
	// reload fails, the old generation serving on.
	UpgradeTimeout Duration `json:"upgrade_timeout,omitempty"`
	// Cluster, see ClusterConfig.
	Cluster *ClusterConfig `json:"cluster,omitempty"`
	// Admin is the host:port of the master's admin HTTP endpoint:
	// Prometheus metrics (/metrics), probes (/healthz, /readyz) and
	// profiles of the master and of any worker (/debug/pprof/, with
	// ?worker=ID). "unix:///PATH" serves it on an owner-only Unix socket
	// instead. Without AdminTokenFile it has no authentication: keep it
	// on loopback, or on an address only operators and Prometheus reach.
	// It overrides Goer.Admin and Runner.Admin; "off" turns it off.
	Admin string `json:"admin,omitempty"`
	// AdminMaxConnections caps the connections the admin endpoint holds
	// at once (default 64; -1: no cap); one more is closed at once, so
	// that a flood of connections from any local user cannot take the
	// master's descriptors. Each request is bounded too (see README).
	AdminMaxConnections int `json:"admin_max_connections,omitempty"`
	// AdminTokenFile names a file holding a token (one line) that every
	// admin request but /healthz and /readyz must carry, as
	// "Authorization: Bearer TOKEN" (others get 401). It is read at start
	// (a reload starts a master that reads it again); a file that is
	// missing, unreadable, empty or readable by others refuses the start.
	AdminTokenFile string `json:"admin_token_file,omitempty"`
	// BlockProfileRate and MutexProfileFraction turn on the block and
	// mutex profiles of the master and of every worker
	// (runtime.SetBlockProfileRate, runtime.SetMutexProfileFraction;
	// default 0: off, the profiles are empty).
	BlockProfileRate     int `json:"block_profile_rate,omitempty"`
	MutexProfileFraction int `json:"mutex_profile_fraction,omitempty"`
	// Listeners, see ListenerConfig.
	Listeners []ListenerConfig `json:"listeners,omitempty"`

	// Watchdog. The master asks every worker for its figures over its
	// control channel every WatchdogInterval (default 1s); a worker that
	// has not answered for UnresponsiveTimeout (default 5s) shows as
	// "unresponsive" in status, with its last figures and how long it has
	// been silent, and that is logged once; one silent for
	// KillUnresponsive (default 30s; "0s": never) is killed and replaced
	// under the same id. A worker's control channel is served apart from
	// its event loops: what the watchdog sees is a stopped, swapped-out or
	// wedged process, not one busy callback.
	WatchdogInterval    Duration  `json:"watchdog_interval,omitempty"`
	UnresponsiveTimeout Duration  `json:"unresponsive_timeout,omitempty"`
	KillUnresponsive    *Duration `json:"kill_unresponsive,omitempty"`

	// OrphanTimeout: when the master dies (kill -9, OOM killer, a crash),
	// its workers serve on, as orphans, for this long (default 10m; "0s":
	// they drain at once). The next start in the same run directory takes
	// their listening sockets and tells them to drain once its own
	// workers accept; without one they drain after OrphanTimeout.
	OrphanTimeout *Duration `json:"orphan_timeout,omitempty"`

	// TicketKeyRotation is how often the master draws a new TLS session
	// ticket key for all its workers (default 1h; the two previous keys
	// still decrypt: master.Options.TicketKeyRotation).
	TicketKeyRotation Duration `json:"ticket_key_rotation,omitempty"`
}

// ClusterConfig gives the workers a cluster Node (package cluster), so that
// any worker, of any listener, on any machine, can send to any connection,
// user or group (Goer.SendToUser and the other cluster methods).
//
//	"cluster": {"enabled": true}                                  one machine: the master embeds NATS
//	"cluster": {"nats_url": "nats://10.0.0.5:4222,nats://10.0.0.6:4222"}   machines sharing a NATS cluster
type ClusterConfig struct {
	// Enabled turns the cluster on. Without NATSURL the master embeds a
	// NATS server on loopback (a random port, no authentication: any
	// local process may publish to it), for this machine's workers only;
	// during a reload the new master's server routes to the old one, so
	// both generations reach each other.
	Enabled bool `json:"enabled,omitempty"`
	// NATSURL joins an existing NATS server or cluster instead (comma
	// separated URLs; credentials in the URL). Setting it turns the
	// cluster on. Connection ids stay unique across the masters sharing
	// it (see master.Identity.Route).
	NATSURL string `json:"nats_url,omitempty"`
	// Prefix namespaces the subjects, so that several applications can
	// share one NATS (default "goes").
	Prefix string `json:"prefix,omitempty"`
}

// on reports whether c turns the cluster on.
func (c *ClusterConfig) on() bool { return c != nil && (c.Enabled || c.NATSURL != "") }

// natsURL is c's NATSURL ("" without a cluster section).
func (c *ClusterConfig) natsURL() string {
	if c == nil {
		return ""
	}
	return c.NATSURL
}

func (c *ClusterConfig) prefix() string {
	if c == nil || c.Prefix == "" {
		return cluster.DefaultPrefix
	}
	return c.Prefix
}

// ListenerConfig is one listener of a Config.
type ListenerConfig struct {
	// Name shows in status and logs.
	Name string `json:"name,omitempty"`
	// Listen is a workerman-style URI: http://, websocket://, text://,
	// frame://, tcp://, udp://, unix:// (a path), tls:// (raw TLS).
	Listen string `json:"listen,omitempty"`
	// Count is the number of workers (default: number of CPUs).
	Count int `json:"count,omitempty"`
	// Handler is what goes-master serves: "echo" (default), "hello",
	// "chat", "static" (the files under Root, over http://) or "upload"
	// (the length and SHA-256 of request bodies of any size, streamed).
	Handler string `json:"handler,omitempty"`
	// Root is the directory goes-master's "static" handler serves.
	Root string `json:"root,omitempty"`
	// CertFile and KeyFile are PEM files for TLS (tls://, https://,
	// wss://): the default certificate.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// Certificates are more certificates, chosen by the client's SNI
	// (Goer.Certificates).
	Certificates []CertFiles `json:"certificates,omitempty"`
	// MinTLSVersion is "1.2" (the default) or "1.3".
	MinTLSVersion string `json:"min_tls_version,omitempty"`
	// ClientCAFile: clients must present a certificate signed by one of
	// the CAs of this PEM file.
	ClientCAFile string `json:"client_ca_file,omitempty"`
	// TLSHandshakeTimeout bounds a TLS handshake from the accept, the
	// ClientHello's arrival included (default "10s"; it cannot be off).
	// MaxTLSHandshakes bounds the handshakes in progress per worker
	// (default 1024; -1: no bound). TLS listeners only (see
	// Goer.TLSHandshakeTimeout).
	TLSHandshakeTimeout Duration `json:"tls_handshake_timeout,omitempty"`
	MaxTLSHandshakes    int      `json:"max_tls_handshakes,omitempty"`
	// StopTimeout bounds this listener's graceful drain.
	StopTimeout Duration `json:"stop_timeout,omitempty"`
	// MaxPackageSize caps one packet (bytes).
	MaxPackageSize int `json:"max_package_size,omitempty"`
	// MaxSendBufferSize caps one connection's send buffer (bytes).
	MaxSendBufferSize int `json:"max_send_buffer_size,omitempty"`
	// IdleTimeout closes connections idle this long.
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
	// CallbackGoroutines runs the connection callbacks on a pool of that
	// many goroutines per worker instead of on the event loops, for
	// handlers that block (see Goer.CallbackGoroutines; default 0: on
	// the loops).
	CallbackGoroutines int `json:"callback_goroutines,omitempty"`
	// NoIOUring turns off the event loops' io_uring send path (see
	// Goer.NoIOUring; default false: on where the kernel allows it).
	NoIOUring bool `json:"no_io_uring,omitempty"`

	// Recycling (see Goer.MaxRequests): replace a worker after about
	// MaxRequests requests (messages) or once its resident memory passes
	// about MaxMemory bytes, each ±10% per worker (default 0: never).
	MaxRequests uint64 `json:"max_requests,omitempty"`
	MaxMemory   uint64 `json:"max_memory,omitempty"`

	// AcceptMargin balances the connections of this listener's workers
	// (see Goer.AcceptMargin): a worker above the mean times 1+margin
	// (plus 16) stops accepting for a moment (default 0.1; negative:
	// off).
	AcceptMargin float64 `json:"accept_margin,omitempty"`

	// Read and send timeouts, on by default (see the Goer fields of the
	// same names): absent or "0s" keeps the default, "off" (or a negative
	// duration, or -1 for the rate) turns the rule off.

	// HeaderTimeout bounds a request head (default "30s").
	HeaderTimeout Duration `json:"header_timeout,omitempty"`
	// BodyTimeout bounds the silence inside a partly received packet
	// (default "60s").
	BodyTimeout Duration `json:"body_timeout,omitempty"`
	// BodyMinRate is the least rate of a partly received packet, in
	// bytes per second (default 1024).
	BodyMinRate int `json:"body_min_rate,omitempty"`
	// KeepAliveTimeout bounds the wait between two HTTP requests
	// (default "75s").
	KeepAliveTimeout Duration `json:"keepalive_timeout,omitempty"`
	// SendTimeout bounds the wait for a peer that takes no output
	// (default "60s").
	SendTimeout Duration `json:"send_timeout,omitempty"`

	// Memory of unfinished input (issue 12).

	// MaxInputMemory caps the memory each worker of this listener holds
	// for input that is not yet a whole packet, in bytes; past it the
	// largest holders are shed (see Goer.MaxInputMemory; default 64 MiB,
	// -1: no cap).
	MaxInputMemory int `json:"max_input_memory,omitempty"`

	// AccessLog is the path of this listener's access log, one JSON line
	// per HTTP request (see Goer.AccessLog); off when empty.
	AccessLog string `json:"access_log,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of seconds; "off"
// is -1ns, which turns off the settings that are on by default (the
// timeouts).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil && s == "off" {
		*d = -1
		return nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("goes: duration %s: want a string like \"30s\"", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("goes: duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// ParseConfig parses a JSON config; unknown fields are errors.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("goes: config: %w", err)
	}
	return &c, nil
}

// LoadConfig reads and parses the config file at path.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("goes: config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return c, nil
}
