package procenv

import (
	"math"
	"net/url"
	"os"
	"strconv"
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
	return [][2]string{{keyGeneration, gen}, {keyNextRoute, route}, {keyClusterRoute, s.ClusterRoute}}
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
