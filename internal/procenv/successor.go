package procenv

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SuccessorEnv is what a master hands to the master that a reload starts
// (cloudflare/tableflip starts it with this process's environment, so the
// hand-off goes through Apply). The zero value hands nothing: what a
// master started cold decodes.
type SuccessorEnv struct {
	// Generation is the new master's generation (GOES_GENERATION); 0:
	// none handed, else positive.
	Generation int
	// NextRoute is the first worker route the new master gives
	// (GOES_NEXT_ROUTE); 0: none handed (routes are never 0).
	NextRoute uint32
	// ClusterRoute is the route URL of the old master's embedded NATS
	// server, which the new master's server joins while both generations
	// run (GOES_CLUSTER_ROUTE); empty without one. It carries a secret.
	ClusterRoute string

	// Operations.

	// ParentControl is the old master's own control socket, an absolute
	// path (GOES_PARENT_CONTROL): a new master that fails before it serves
	// tells the old one why there (master.ReportUpgradeFailure), so that
	// reload prints the reason.
	ParentControl string
	// ConfigFile is the config file the new master runs, an absolute path
	// (GOES_RELOAD_CONFIG); it overrides the --config of the arguments
	// tableflip starts the new master with. Empty: those arguments say.
	ConfigFile string
	// RunDir is the run directory, an absolute path (GOES_RELOAD_RUN_DIR):
	// a reload never moves it, whatever the config file says.
	RunDir string
	// Reloads counts the reloads of the run directory so far, by result
	// (GOES_RELOADS, "ok,failed,refused"); the new master adds its own
	// success once it serves.
	Reloads ReloadCounts
}

// ReloadCounts count reloads by result.
type ReloadCounts struct {
	OK, Failed, Refused int
}

func (r ReloadCounts) String() string { return fmt.Sprintf("%d,%d,%d", r.OK, r.Failed, r.Refused) }

// parseReloads parses ReloadCounts.String's form.
func parseReloads(v string) (ReloadCounts, error) {
	const want = "ok,failed,refused (non-negative numbers)"
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return ReloadCounts{}, malformed(keyReloads, v, want)
	}
	var n [3]int
	for i, x := range f {
		c, err := strconv.ParseUint(x, 10, 31)
		if err != nil {
			return ReloadCounts{}, malformed(keyReloads, v, want)
		}
		n[i] = int(c)
	}
	return ReloadCounts{OK: n[0], Failed: n[1], Refused: n[2]}, nil
}

// Encode returns s as KEY=VALUE entries; zero fields are left out.
func (s SuccessorEnv) Encode() []string {
	var env []string
	for _, kv := range s.pairs() {
		if kv[1] != "" {
			env = append(env, kv[0]+"="+kv[1])
		}
	}
	return env
}

// pairs lists every variable of s with its value, "" for a zero field.
func (s SuccessorEnv) pairs() [][2]string {
	var gen, route string
	if s.Generation != 0 {
		gen = strconv.Itoa(s.Generation)
	}
	if s.NextRoute != 0 {
		route = strconv.FormatUint(uint64(s.NextRoute), 10)
	}
	var reloads string
	if s.Reloads != (ReloadCounts{}) {
		reloads = s.Reloads.String()
	}
	return [][2]string{{keyGeneration, gen}, {keyNextRoute, route}, {keyClusterRoute, s.ClusterRoute},
		{keyParentControl, s.ParentControl}, {keyReloadConfig, s.ConfigFile}, {keyReloadRunDir, s.RunDir}, {keyReloads, reloads}}
}

// DecodeSuccessorEnv reads what the previous master handed on; unset
// variables decode to zero fields.
func DecodeSuccessorEnv(getenv func(string) string) (SuccessorEnv, error) {
	var s SuccessorEnv
	if v := getenv(keyGeneration); v != "" {
		g, err := strconv.Atoi(v)
		if err != nil || g <= 0 || g > math.MaxInt32 {
			return SuccessorEnv{}, malformed(keyGeneration, v, "a positive number")
		}
		s.Generation = g
	}
	r, err := parseUint(getenv, keyNextRoute, 32)
	if err != nil {
		return SuccessorEnv{}, err
	}
	s.NextRoute = uint32(r)
	if v := getenv(keyClusterRoute); v != "" {
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return SuccessorEnv{}, malformed(keyClusterRoute, redact(v), "a URL with a scheme and a host")
		}
		s.ClusterRoute = v
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{keyParentControl, &s.ParentControl}, {keyReloadConfig, &s.ConfigFile}, {keyReloadRunDir, &s.RunDir}} {
		if v := getenv(f.key); v != "" {
			if !filepath.IsAbs(v) {
				return SuccessorEnv{}, malformed(f.key, v, "an absolute path")
			}
			*f.dst = v
		}
	}
	if v := getenv(keyReloads); v != "" {
		if s.Reloads, err = parseReloads(v); err != nil {
			return SuccessorEnv{}, err
		}
	}
	return s, nil
}

// redact hides a URL's password, if it parses at all, in an error.
func redact(v string) string {
	if u, err := url.Parse(v); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// Apply makes this process's environment what the new master must
// inherit, right before tableflip's Upgrade (which starts it with
// os.Environ()): it sets s's variables, unsets those s leaves zero (so that
// nothing an older generation handed this master goes further), and
// unsets GOES_DAEMON_NOTIFY, which names a descriptor of this process
// only. It is the one function of goes that changes its own environment.
// The environment is the process's: one Apply at a time.
func (s SuccessorEnv) Apply() error {
	for _, kv := range s.pairs() {
		var err error
		if kv[1] == "" {
			err = os.Unsetenv(kv[0])
		} else {
			err = os.Setenv(kv[0], kv[1])
		}
		if err != nil {
			return err
		}
	}
	return os.Unsetenv(keyNotify)
}
