//go:build unix

package master

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Who reaches the admin endpoint, and for how long: its address (TCP or
// an owner-only Unix socket, peer-checked), the bearer token and the
// per-request timeouts.

// adminNetwork splits Options.Admin: "unix:///path" (or "unix:path")
// is a Unix socket, anything else host:port.
func adminNetwork(admin string) (network, addr string) {
	if p, ok := strings.CutPrefix(admin, "unix://"); ok {
		return "unix", p
	}
	if p, ok := strings.CutPrefix(admin, "unix:"); ok {
		return "unix", p
	}
	return "tcp", admin
}

// listenAdminUnix listens on the Unix socket path, owner-only (a socket
// left by a master that died is replaced; one that answers is not).
func listenAdminUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another process serves there", path)
		}
		os.Remove(path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // the next generation serves on it
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// peerListener refuses the clients of a Unix admin socket that run as
// another user than the master (root aside), as the control socket does.
type peerListener struct{ net.Listener }

func (l peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			return c, nil
		}
		if err := checkPeer(uc); err != nil {
			c.Close()
			continue
		}
		return c, nil
	}
}

// adminAuth asks for Authorization: Bearer token on every path but the
// probes, which load balancers and orchestrators call without one (they
// tell nothing but up or down). No token: h as it is.
func adminAuth(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz":
			h.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="goes admin"`)
			http.Error(w, "401 unauthorized: this admin endpoint asks for Authorization: Bearer TOKEN (admin_token_file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// adminDrainWait bounds how long a handed-over admin endpoint waits for
// the requests of the connections it accepted: past the server's
// ReadHeaderTimeout, which bounds a connection that sends nothing.
const adminDrainWait = 15 * time.Second

// adminTimeouts bounds the writing of every response (adminWriteTimeout,
// set here rather than as the server's WriteTimeout: net/http/pprof
// refuses a profile longer than that), and gives a profile or a trace of
// seconds=N (default 30 and 1, at most adminMaxProfile) the time it
// takes: its read and write deadlines move N later (net/http cancels a
// request's context when its read deadline passes while the handler
// runs).
func adminTimeouts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d time.Duration
		switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
		case "profile":
			d = 30 * time.Second
		case "trace":
			d = time.Second
		}
		if d > 0 {
			if sec, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64); err == nil && sec > 0 {
				d = min(time.Duration(sec*float64(time.Second)), adminMaxProfile)
			}
		}
		rc := http.NewResponseController(w)
		if d > 0 {
			rc.SetReadDeadline(time.Now().Add(adminReadTimeout + d))
		}
		rc.SetWriteDeadline(time.Now().Add(adminWriteTimeout + d))
		h.ServeHTTP(w, r)
	})
}
