package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/text"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A goes connection is what the Node delivers to.
var _ Conn = connections.Connection(nil)

// startServer starts an embedded NATS server for the test.
func startServer(t testing.TB, o ServerOptions) (*Server, string) {
	t.Helper()
	o.Logger = testkit.Logger(t).Level(zerolog.InfoLevel)
	s := NewServer(o)
	url, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s, url
}

// worker is one goes worker as the root package runs it: a connections
// server with the text protocol on a loopback listener, and a Node that
// the callbacks keep informed. Its clients send commands:
//
//	user <uid> | unuser | join <group> | leave <group>
//
// answered "ok" once done (and flushed to NATS), or "error ...".
type worker struct {
	node *Node
	srv  *connections.Server
	addr string
	done chan error
	once sync.Once
}

func nodeOptions(t testing.TB, url string, wid, epoch uint64) NodeOptions {
	return NodeOptions{
		URL:            url,
		IDBase:         wid<<48 | epoch<<32,
		Name:           fmt.Sprintf("test/%d.%d", wid, epoch),
		RequestTimeout: 5 * time.Second,
		ReconnectWait:  10 * time.Millisecond,
		Logger:         testkit.Logger(t).Level(zerolog.InfoLevel),
	}
}

func startWorker(t testing.TB, o NodeOptions) *worker {
	t.Helper()
	node, err := NewNode(o)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{node: node, done: make(chan error, 1)}
	cfg := connections.Config{
		Protocol: text.New(),
		IDBase:   o.IDBase,
		Logger:   testkit.Logger(t).Level(zerolog.InfoLevel),
		Handler: connections.Handler{
			OnConnect: func(c connections.Connection) {
				if err := node.Add(c); err != nil {
					c.Send("error "+err.Error(), false)
					c.Close()
					return
				}
				c.Send("id "+strconv.FormatUint(c.ID(), 10), false)
			},
			OnClose:   func(c connections.Connection) { node.Remove(c) },
			OnMessage: w.command,
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	w.srv = connections.NewServer(cfg)
	go func() { w.done <- w.srv.Serve(ln) }()
	t.Cleanup(func() { w.stop(t) })
	// Wait until the worker serves: a probe connection is greeted, then
	// gone. (connections.Server.Close racing a Serve that is still
	// starting its event loops leaks them; see the cluster report.)
	probe := dialClient(t, w)
	probe.c.Close()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "probe gone", func() error {
		if n := node.Stats().Connections; n != 0 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
	return w
}

func (w *worker) command(c connections.Connection, data []byte) {
	verb, arg, _ := strings.Cut(string(data), " ")
	var err error
	switch verb {
	case "user":
		err = w.node.BindUser(c, arg)
	case "unuser":
		err = w.node.UnbindUser(c)
	case "join":
		err = w.node.JoinGroup(c, arg)
	case "leave":
		err = w.node.LeaveGroup(c, arg)
	default:
		err = fmt.Errorf("unknown command %q", verb)
	}
	if err == nil {
		err = w.node.Flush()
	}
	if err != nil {
		c.Send("error "+err.Error(), false)
		return
	}
	c.Send("ok", false)
}

// stop closes the worker's connections, then its Node, like a worker that
// exits.
func (w *worker) stop(t testing.TB) {
	w.once.Do(func() {
		w.srv.Close()
		if err := <-w.done; !errors.Is(err, connections.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		if err := w.node.Close(); err != nil {
			t.Errorf("node close: %v", err)
		}
	})
}

// client is a TCP client of a worker.
type client struct {
	t  testing.TB
	c  net.Conn
	r  *bufio.Reader
	id uint64
}

func dialClient(t testing.TB, w *worker) *client {
	t.Helper()
	c, err := net.Dial("tcp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	line := cl.read()
	idStr, ok := strings.CutPrefix(line, "id ")
	if !ok {
		t.Fatalf("greeting %q", line)
	}
	if cl.id, err = strconv.ParseUint(idStr, 10, 64); err != nil {
		t.Fatal(err)
	}
	return cl
}

func (cl *client) read() string {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := cl.r.ReadString('\n')
	if err != nil {
		cl.t.Fatalf("client read: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// with returns cl reporting to t (a subtest's).
func (cl *client) with(t testing.TB) *client {
	c := *cl
	c.t = t
	return &c
}

// expect reads the next line and checks it.
func (cl *client) expect(want string) {
	cl.t.Helper()
	if got := cl.read(); got != want {
		cl.t.Fatalf("client %x read %q, want %q", cl.id, got, want)
	}
}

// do sends a command and waits for "ok".
func (cl *client) do(cmd string) {
	cl.t.Helper()
	if _, err := fmt.Fprintf(cl.c, "%s\n", cmd); err != nil {
		cl.t.Fatal(err)
	}
	cl.expect("ok")
}

// nothingBefore proves that cl received nothing else: it sends a marker to
// the client through n and expects it as the very next line. Messages from
// one Node to one connection keep their order, so anything sent to cl
// before the marker would be read first.
func (cl *client) nothingBefore(n *Node) {
	cl.t.Helper()
	marker := fmt.Sprintf("marker %x", cl.id)
	if err := n.SendToConnection(cl.id, []byte(marker)); err != nil {
		cl.t.Fatal(err)
	}
	cl.expect(marker)
}

// waitPeers waits until every worker's Node knows all the others.
func waitPeers(t testing.TB, ws ...*worker) {
	t.Helper()
	for _, w := range ws {
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "peers of "+w.node.Name(), func() error {
			if got := len(w.node.Peers()); got != len(ws)-1 {
				return fmt.Errorf("%s knows %v", w.node.Name(), w.node.Peers())
			}
			return nil
		})
	}
}

// waitInterest waits until server s knows a subscriber for subject.
// waitRouteInterest waits until s knows, through a route, that another
// server has interest in subject (the remote's subscription as s's route
// lists it): until then s keeps a publish on subject to its own clients.
// waitInterest is satisfied by a local subscription alone.
func waitRouteInterest(t testing.TB, s *Server, subject string) {
	t.Helper()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "routed interest in "+subject, func() error {
		s.mu.Lock()
		ns := s.ns
		s.mu.Unlock()
		if ns == nil {
			return errors.New("server not running")
		}
		rz, err := ns.Routez(&server.RoutezOptions{Subscriptions: true})
		if err != nil {
			return err
		}
		for _, r := range rz.Routes {
			for _, sub := range r.Subs {
				if sub == subject {
					return nil
				}
			}
		}
		return errors.New("no route lists it")
	})
}

func waitInterest(t testing.TB, s *Server, subject string) {
	t.Helper()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "interest in "+subject, func() error {
		if !s.interest(subject) {
			return errors.New("no interest")
		}
		return nil
	})
}
