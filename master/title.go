//go:build unix

package master

import (
	"path/filepath"
	"strconv"
	"strings"
)

// workerArgs is the argument list a worker process of s starts with: its
// title, then the master's arguments but the first (Options.Args[1:]), so
// that a program that reads its own flags sees in a worker what it sees
// in the master. The title is what ps shows for the worker (ps -o args,
// pgrep -f), in the style of nginx and workerman:
//
//	goes-master: worker 3 [web] http://0.0.0.0:8080 start -d --run-dir=/run/goes
//
// It names the program (the base name of Options.Args[0]), the worker id,
// the listener's name (left out when it is the default, the listener's
// transport and address) and what the listener serves. The title is only
// argv[0]: the binary a worker runs is Options.Exe whatever argv[0] says.
func (m *master) workerArgs(s *slot) []string {
	l := m.o.Listeners[s.listener]
	addr := l.Addr
	if s.listener < len(m.bound) {
		addr = m.bound[s.listener]
	}
	prog := "goes"
	if len(m.o.Args) > 0 {
		prog = programName(m.o.Args[0])
	}
	args := make([]string, 0, max(len(m.o.Args), 1))
	args = append(args, workerTitle(prog, s.id, l, addr))
	if len(m.o.Args) > 1 {
		args = append(args, m.o.Args[1:]...)
	}
	return args
}

// programName is the name of the program started as arg0: its base name
// without an extension ("goes-master" for /usr/local/bin/goes-master).
func programName(arg0 string) string {
	name := filepath.Base(arg0)
	name = strings.TrimSuffix(name, filepath.Ext(name))
	if name == "" || name == "." || name == "/" {
		return "goes"
	}
	return name
}

// workerTitle is "<prog>: worker <id> [<name>] <listen URI>".
func workerTitle(prog string, id int, l Listener, addr string) string {
	var b strings.Builder
	b.WriteString(prog)
	b.WriteString(": worker ")
	b.WriteString(strconv.Itoa(id))
	if l.Name != "" && l.Name != l.Transport+"://"+l.Addr {
		b.WriteString(" [")
		b.WriteString(l.Name)
		b.WriteString("]")
	}
	b.WriteString(" ")
	b.WriteString(listenURI(l, addr))
	return b.String()
}

// listenURI names what a listener serves in workerman's way: the
// protocol's scheme and the bound address ("http://0.0.0.0:8080"); the
// transport for a listener without a protocol ("tcp://...", "udp://...");
// "https" and "wss" for HTTP and WebSocket over TLS, "<protocol>+tls" for
// another protocol over TLS, "<protocol>+unix" on a Unix socket.
func listenURI(l Listener, addr string) string {
	transport := l.Transport
	if transport == "" {
		transport = l.Network
	}
	scheme := l.Protocol
	switch {
	case scheme == "" || scheme == "raw":
		scheme = transport
	case transport == "tls" && scheme == "http":
		scheme = "https"
	case transport == "tls" && scheme == "websocket":
		scheme = "wss"
	case transport == "tls" || transport == "unix":
		scheme += "+" + transport
	}
	return scheme + "://" + addr
}
