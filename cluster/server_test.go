package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/testkit"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServerStart(t *testing.T) {
	var logs syncBuffer
	s := NewServer(ServerOptions{Logger: zerolog.New(&logs).Level(zerolog.DebugLevel)})
	if s.URL() != "" || s.RouteURL() != "" {
		t.Fatal("URL before Start")
	}
	u, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "nats" || pu.Hostname() != "127.0.0.1" || pu.Port() == "0" {
		t.Fatalf("url %q: want nats://127.0.0.1:<port>", u)
	}
	if s.URL() != u {
		t.Fatalf("URL() = %q, want %q", s.URL(), u)
	}
	if s.RouteURL() != "" {
		t.Fatalf("RouteURL without Cluster = %q", s.RouteURL())
	}
	if _, err := s.Start(); !errors.Is(err, ErrServerStarted) {
		t.Fatalf("second Start: %v, want ErrServerStarted", err)
	}

	// A real client round trip through it.
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	nc.Publish("x", []byte("ping"))
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "ping" {
		t.Fatalf("round trip: %v, %v", m, err)
	}
	nc.Close()

	// The server's log went to the zerolog logger, as debug notices.
	if !strings.Contains(logs.String(), `"message":"nats server notice"`) ||
		!strings.Contains(logs.String(), `"message":"nats server started"`) {
		t.Fatalf("log bridge wrote:\n%s", logs.String())
	}
	s.Shutdown()
	s.Shutdown() // harmless
	if s.URL() != "" {
		t.Fatal("URL after Shutdown")
	}
}

func TestServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := NewServer(ServerOptions{
		Port:         ln.Addr().(*net.TCPAddr).Port,
		ReadyTimeout: 300 * time.Millisecond,
		Logger:       testkit.Logger(t).Level(zerolog.InfoLevel),
	})
	_, err = s.Start()
	if !errors.Is(err, ErrServerNotReady) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start on a busy port: %v, want ErrServerNotReady naming the cause", err)
	}
	s.Shutdown() // harmless after a failed Start
}

func TestServerBadRoute(t *testing.T) {
	s := NewServer(ServerOptions{Cluster: &ClusterOptions{Routes: []string{"nats-route://%zz"}}, Logger: testkit.Logger(t).Level(zerolog.InfoLevel)})
	if _, err := s.Start(); err == nil || !strings.Contains(err.Error(), "route") {
		t.Fatalf("Start with a bad route URL: %v", err)
	}
}

func TestServerCluster(t *testing.T) {
	s1, _ := startServer(t, ServerOptions{Cluster: &ClusterOptions{Name: "c"}})
	ru := s1.RouteURL()
	if pu, err := url.Parse(ru); err != nil || pu.Scheme != "nats-route" || pu.Hostname() != "127.0.0.1" {
		t.Fatalf("RouteURL %q", ru)
	}
	s2, _ := startServer(t, ServerOptions{Cluster: &ClusterOptions{Name: "c", Routes: []string{ru}}})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route", func() error {
		if s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
			return errors.New("no route yet")
		}
		return nil
	})
}

// TestDropRoutes: a server whose route leads to a server that is gone
// keeps retrying it until DropRoutes; then it gives up, serves on, and
// keeps its own route listener.
func TestDropRoutes(t *testing.T) {
	s1, _ := startServer(t, ServerOptions{Name: "old", Cluster: &ClusterOptions{}})
	var logs syncBuffer
	s2 := NewServer(ServerOptions{
		Name: "new", Cluster: &ClusterOptions{Routes: []string{s1.RouteURL()}},
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel), Debug: true,
	})
	u2, err := s2.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route up", func() error {
		if s2.NumRoutes() == 0 {
			return errors.New("no route")
		}
		return nil
	})
	routeURL := s2.RouteURL()
	s1.Shutdown()
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route retried", func() error {
		if !strings.Contains(logs.String(), "Error trying to connect to route") {
			return errors.New("no retry logged")
		}
		return nil
	})
	if err := s2.DropRoutes(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route given up", func() error {
		if !strings.Contains(logs.String(), "no longer part of configured routes") {
			return errors.New("still retrying")
		}
		return nil
	})
	if s2.RouteURL() != routeURL || s2.URL() != u2 {
		t.Fatalf("addresses changed: %s %s, were %s %s", s2.URL(), s2.RouteURL(), u2, routeURL)
	}
	if err := s2.DropRoutes(); err != nil {
		t.Fatalf("second DropRoutes: %v", err)
	}
	nc, err := nats.Connect(u2)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestServerAuth: with a token, clients need it (Start's URL carries it);
// with route credentials, so do servers that route to this one (RouteURL
// carries them).
func TestServerAuth(t *testing.T) {
	var logs syncBuffer
	s1 := NewServer(ServerOptions{
		Name: "s1", Token: "s3cret", Cluster: &ClusterOptions{Username: "r", Password: "pw"},
		Logger: zerolog.New(&logs).Level(zerolog.DebugLevel),
	})
	u1, err := s1.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Shutdown()
	pu, err := url.Parse(u1)
	if err != nil || pu.User.String() != "s3cret" || s1.URL() != u1 {
		t.Fatalf("url %q (URL() %q): want the token in it", u1, s1.URL())
	}
	if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), "pw@") {
		t.Fatalf("secrets logged:\n%s", logs.String())
	}
	bare := *pu
	bare.User = nil
	if nc, err := nats.Connect(bare.String(), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected")
	}
	nc, err := nats.Connect(u1)
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()

	ru, err := url.Parse(s1.RouteURL())
	if err != nil || ru.User.String() != "r:pw" {
		t.Fatalf("route url %q: want the credentials", s1.RouteURL())
	}
	s2, _ := startServer(t, ServerOptions{Name: "s2", Cluster: &ClusterOptions{Routes: []string{s1.RouteURL()}}})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route with credentials up", func() error {
		if s1.NumRoutes() == 0 || s2.NumRoutes() == 0 {
			return errors.New("no route")
		}
		return nil
	})
	ru.User = nil
	s3, _ := startServer(t, ServerOptions{Name: "s3", Cluster: &ClusterOptions{Routes: []string{ru.String()}}})
	testkit.Eventually(t, testkit.Wait, testkit.Poll, "route without credentials refused", func() error {
		if !strings.Contains(logs.String(), "Router connection closed: Authentication Failure") {
			return fmt.Errorf("no route authentication failure logged:\n%s", logs.String())
		}
		return nil
	})
	// The protected side never takes s3 in: s1 refuses its route, so
	// neither s1 nor s2 (which could only learn s3 from s1) route to it.
	// s3's own count is no measure: it registers each attempt as a route
	// when s1's INFO arrives, which s1 sends before it reads s3's CONNECT,
	// and drops it when s1 closes the connection a moment later; nothing
	// crosses it.
	for _, s := range []*Server{s1, s2} {
		if names := s.routeNames(); len(names) == 0 || slices.Contains(names, "s3") {
			t.Fatalf("%s routes to %v, want s1 and s2 only", s.o.Name, names)
		}
	}
	for _, name := range s3.routeNames() {
		if name != "s1" {
			t.Fatalf("s3 routes to %s", name)
		}
	}
}

// TestServerMaxConnections: the embedded server holds at most
// MaxConnections clients (DefaultMaxConnections unless set); one more is
// told so and closed, so a flood of connections to the port cannot take
// the master's descriptors.
func TestServerMaxConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int // 0: the default
		want int
	}{
		{name: "set", max: 3, want: 3},
		{name: "default", want: DefaultMaxConnections},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, u := startServer(t, ServerOptions{MaxConnections: tc.max})
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			// held says whether the server holds a new connection: it
			// answers a PING with PONG, or refuses with -ERR and closes.
			held := func(i int) bool {
				t.Helper()
				c, err := net.DialTimeout("tcp", pu.Host, testkit.Wait)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetDeadline(time.Now().Add(testkit.Wait))
				if _, err := c.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
					return false // closed already: refused
				}
				var got []byte
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					switch {
					case strings.Contains(string(got), "PONG"):
						return true
					case strings.Contains(string(got), "maximum connections exceeded"):
						return false
					case err != nil:
						t.Fatalf("connection %d: %v after %q", i, err, got)
					}
				}
			}
			for i := 1; i <= tc.want; i++ {
				if !held(i) {
					t.Fatalf("connection %d of %d refused", i, tc.want)
				}
			}
			if held(tc.want + 1) {
				t.Fatalf("connection %d held: want it refused", tc.want+1)
			}
		})
	}
}
