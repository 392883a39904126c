// Package app is goes-master: a goes program whose listeners come from a
// JSON config file (see goes.Config) and whose handlers are built in:
//
//   - "hello" answers every message with "hello, goer" (HTTP: 200 with
//     that body);
//   - "echo" (the default) sends every message back (over WebSocket in the
//     type it came in: binary stays binary);
//   - "chat" is a small chat over the cluster (it turns Goer.Cluster on);
//   - "static" serves the files under the listener's "root" over HTTP
//     (http.ServeFile: ranges, 304s; "index.html" for a directory; 404,
//     403, 405 otherwise);
//   - "upload" answers every HTTP request with the length and SHA-256 of
//     its body ("52428800 9f86d0...\n"), which it reads in pieces as they
//     arrive (http.Protocol.StreamBody), so a body of any size costs the
//     worker no more memory than one read.
//
// Without --config it serves default.json, embedded in the binary.
//
// The chat handler greets every connection with "id <connection id>";
// then each message is a command, answered "ok", "error ..." or a result:
//
//	login <uid>          bind this connection to a user
//	logout               unbind it
//	join <group>         join a group
//	leave <group>        leave it
//	user <uid> <text>    send text to every connection of the user
//	group <group> <text> send text to the group, this connection excepted
//	send <id> <text>     send text to one connection
//	all <text>           send text to every connection but this one
//	online <uid>         answered "online true" or "online false"
//	count [<group>]      answered "count N": the group's connections, or all
//
// Text arrives as it was sent, encoded by the receiver's protocol, from
// any worker of any listener (of any master sharing the NATS).
package app

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/websocket"
)

//go:embed default.json
var defaultConfig []byte

// DefaultConfig returns the embedded default config.
func DefaultConfig() []byte { return append([]byte(nil), defaultConfig...) }

// Main runs goes-master's command line and exits.
func Main(version string) {
	r := &goes.Runner{
		Name:          "goes-master",
		Version:       version,
		Build:         Build,
		DefaultConfig: defaultConfig,
	}
	r.Main(os.Args)
}

// Build makes the Goers of cfg's listeners.
func Build(cfg *goes.Config) ([]*goes.Goer, error) {
	goers := make([]*goes.Goer, 0, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		if lc.Listen == "" {
			return nil, fmt.Errorf("goes-master: listener %d has no listen URI", i)
		}
		g := goes.NewGoer(lc.Listen, nil, "")
		g.Name = lc.Name
		g.Count = lc.Count
		g.CertFile, g.KeyFile = lc.CertFile, lc.KeyFile
		if err := lc.ApplyTLS(g); err != nil {
			return nil, fmt.Errorf("goes-master: listeners[%d]: %w", i, err)
		}
		g.StopTimeout = time.Duration(lc.StopTimeout)
		g.MaxPackageSize = lc.MaxPackageSize
		g.MaxSendBufferSize = lc.MaxSendBufferSize
		g.IdleTimeout = time.Duration(lc.IdleTimeout)
		g.CallbackGoroutines = lc.CallbackGoroutines
		g.MaxRequests, g.MaxMemory = lc.MaxRequests, lc.MaxMemory
		g.AcceptMargin = lc.AcceptMargin
		// Read and send timeouts (zero: the defaults).
		g.HeaderTimeout = time.Duration(lc.HeaderTimeout)
		g.BodyTimeout = time.Duration(lc.BodyTimeout)
		g.BodyMinRate = lc.BodyMinRate
		g.KeepAliveTimeout = time.Duration(lc.KeepAliveTimeout)
		g.SendTimeout = time.Duration(lc.SendTimeout)
		g.MaxInputMemory = lc.MaxInputMemory
		g.AccessLog = lc.AccessLog
		if err := setHandler(g, lc); err != nil {
			return nil, fmt.Errorf("goes-master: listener %d (%s): %w", i, lc.Listen, err)
		}
		if _, ok := g.Protocol.(*http.Protocol); lc.AccessLog != "" && !ok {
			return nil, fmt.Errorf("goes-master: listener %d (%s): access_log needs an http:// or https:// listener", i, lc.Listen)
		}
		goers = append(goers, g)
	}
	return goers, nil
}

func setHandler(g *goes.Goer, lc goes.ListenerConfig) error {
	switch name := lc.Handler; name {
	case "", "echo":
		g.OnMessage = echo
	case "hello":
		g.OnMessage = func(c connections.Connection, _ []byte) { c.Send("hello, goer", false) }
	case "chat":
		g.Cluster = true
		g.OnConnect = func(c connections.Connection) { c.Send("id "+strconv.FormatUint(c.ID(), 10), false) }
		g.OnMessage = func(c connections.Connection, data []byte) { c.Send(chat(g, c, string(data)), false) }
	case "upload":
		p, ok := g.Protocol.(*http.Protocol)
		if !ok {
			return fmt.Errorf("the upload handler serves http:// listeners")
		}
		p.StreamBody = func(protocols.Conn, *http.Request) bool { return true }
		g.OnMessage = upload
	case "static":
		if _, ok := g.Protocol.(*http.Protocol); !ok {
			return fmt.Errorf("the static handler serves http:// listeners")
		}
		if lc.Root == "" {
			return fmt.Errorf("the static handler needs a root directory")
		}
		if fi, err := os.Stat(lc.Root); err != nil || !fi.IsDir() {
			return fmt.Errorf("static root %q is not a directory (%v)", lc.Root, err)
		}
		fsys := os.DirFS(lc.Root)
		g.OnMessage = func(c connections.Connection, _ []byte) { serveStatic(c, fsys) }
	default:
		return fmt.Errorf("unknown handler %q (want echo, hello, chat, static or upload)", name)
	}
	return nil
}

// echo sends a message back; over WebSocket in the type it came in (a
// binary message comes back binary: as text it could not even be sent
// unless it were UTF-8).
func echo(c connections.Connection, data []byte) {
	if op := websocket.MessageType(c); op != 0 {
		websocket.SetBinary(c, op == websocket.OpBinary)
	}
	c.SendBytes(data, false)
}

// uploadState is what the upload handler keeps for a request whose body
// is arriving.
type uploadState struct {
	h hash.Hash
	n int64
}

// upload hashes the body of an HTTP request, piece by piece when it is
// streamed, and answers with its length and SHA-256 once it is complete.
func upload(c connections.Connection, data []byte) {
	u, _ := c.Context().(*uploadState)
	if u == nil {
		u = &uploadState{h: sha256.New()}
		c.SetContext(u)
	}
	u.h.Write(data)
	u.n += int64(len(data))
	if req := http.RequestOf(c); req != nil && !req.BodyDone() {
		return
	}
	c.Send(strconv.FormatInt(u.n, 10)+" "+hex.EncodeToString(u.h.Sum(nil))+"\n", false)
	u.h.Reset()
	u.n = 0
}

// serveStatic answers an HTTP request with the file of fsys its path
// names, index.html for a directory.
func serveStatic(c connections.Connection, fsys fs.FS) {
	name := strings.TrimPrefix(path.Clean("/"+http.RequestOf(c).Path()), "/")
	if name == "" {
		name = "."
	}
	err := http.ServeFile(c, fsys, name)
	if errors.Is(err, http.ErrIsDir) {
		err = http.ServeFile(c, fsys, path.Join(name, "index.html"))
	}
	status, text := 0, ""
	switch {
	case err == nil:
		return
	case errors.Is(err, fs.ErrNotExist):
		status, text = 404, "not found"
	case errors.Is(err, http.ErrIsDir), errors.Is(err, fs.ErrPermission):
		status, text = 403, "forbidden"
	case errors.Is(err, http.ErrFileMethod):
		http.Respond(c, &http.Response{Status: 405, Header: []http.Field{{Name: "Allow", Value: "GET, HEAD"}}})
		return
	default:
		status, text = 500, "cannot read the file"
	}
	http.Respond(c, &http.Response{Status: status, Body: []byte(text)})
}

// chat runs one command of the chat handler and returns the answer.
func chat(g *goes.Goer, c connections.Connection, line string) string {
	verb, rest, _ := strings.Cut(strings.TrimRight(line, "\r"), " ")
	arg, text, _ := strings.Cut(rest, " ")
	var err error
	switch verb {
	case "login":
		if err = g.BindUser(c, arg); err == nil {
			// Flushed: once answered, a message to the user from any
			// worker connected to the same NATS server reaches it.
			err = g.Node().Flush()
		}
	case "logout":
		err = g.UnbindUser(c)
	case "join":
		if err = g.JoinGroup(c, arg); err == nil {
			err = g.Node().Flush()
		}
	case "leave":
		err = g.LeaveGroup(c, arg)
	case "user":
		err = g.SendToUser(arg, []byte(text))
	case "group":
		err = g.SendToGroup(arg, []byte(text), c.ID())
	case "send":
		var id uint64
		if id, err = strconv.ParseUint(arg, 10, 64); err == nil {
			err = g.SendToConnection(id, []byte(text))
		}
	case "all":
		err = g.Broadcast([]byte(rest), c.ID())
	case "online":
		var on bool
		if on, err = g.UserOnline(arg); err == nil {
			return "online " + strconv.FormatBool(on)
		}
	case "count":
		var n int
		if arg == "" {
			n, err = g.ConnectionCount()
		} else {
			n, err = g.GroupCount(arg)
		}
		if err == nil {
			return "count " + strconv.Itoa(n)
		}
	default:
		err = fmt.Errorf("unknown command %q", verb)
	}
	if err != nil {
		return "error " + err.Error()
	}
	return "ok"
}
