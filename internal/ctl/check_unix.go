//go:build unix

package ctl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/goes-project/goes/internal/tlsconf"
)

// checkFull is check and what only a running master meets later: the
// admin address and token file, the TLS certificates, a static handler's
// root, the access logs' and the log file's directories.
func (p *Program[C]) checkFull(cfg C, s Settings) error {
	plan, err := p.check(cfg, s)
	if err != nil {
		return err
	}
	if err := checkAdminAddr(plan.Options.Admin); err != nil {
		return err
	}
	if _, err := readAdminToken(plan.AdminTokenFile); err != nil {
		return err
	}
	for i, l := range plan.Options.Listeners {
		if l.Transport != "tls" {
			continue
		}
		if _, err := tlsconf.Build(plan.TLS[i]); err != nil {
			return fmt.Errorf("listeners[%d] (%s): %w", i, l.Name, err)
		}
	}
	for i, lf := range plan.Files {
		if lf.AccessLog != "" {
			if fi, err := os.Stat(filepath.Dir(lf.AccessLog)); err != nil {
				return fmt.Errorf("listeners[%d]: access_log: %w", i, err)
			} else if !fi.IsDir() {
				return fmt.Errorf("listeners[%d]: access_log %s: %s is not a directory", i, lf.AccessLog, filepath.Dir(lf.AccessLog))
			}
		}
		if lf.Root == "" {
			continue
		}
		if fi, err := os.Stat(lf.Root); err != nil {
			return fmt.Errorf("listeners[%d]: root: %w", i, err)
		} else if !fi.IsDir() {
			return fmt.Errorf("listeners[%d]: root %s is not a directory", i, lf.Root)
		}
	}
	if s.LogFile != "" {
		if fi, err := os.Stat(filepath.Dir(s.LogFile)); err != nil {
			return fmt.Errorf("log_file: %w", err)
		} else if !fi.IsDir() {
			return fmt.Errorf("log_file %s: %s is not a directory", s.LogFile, filepath.Dir(s.LogFile))
		}
	}
	if plan.BlockProfileRate < 0 {
		return fmt.Errorf("block_profile_rate %d: want 0 (off) or more", plan.BlockProfileRate)
	}
	if plan.MutexProfileFraction < 0 {
		return fmt.Errorf("mutex_profile_fraction %d: want 0 (off) or more", plan.MutexProfileFraction)
	}
	return nil
}

// checkAdminAddr checks the admin endpoint's address: host:port, or
// unix:///PATH in an existing directory.
func checkAdminAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("admin %q: want unix:///ABSOLUTE/PATH", addr)
		}
		return nil // its directory may be the run directory, made at start
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("admin %q: want host:port or unix:///PATH: %w", addr, err)
	}
	if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
		return fmt.Errorf("admin %q: %w", addr, err)
	}
	return nil
}

// readAdminToken reads the admin token from path ("": none). A file that
// is missing, unreadable, empty or readable by other users (not owner or
// group) is an error that names it: a start refuses to serve the admin
// endpoint unprotected by mistake.
func readAdminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("admin_token_file %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("admin_token_file %s: readable by every user (mode %v); chmod o-r it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin_token_file %s: empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("admin_token_file " + path + ": the token is one word on one line")
	}
	return tok, nil
}
