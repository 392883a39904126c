//go:build unix

package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/internal/proctest"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// chatClient is a text-protocol client of a "chat" listener. A goroutine
// reads its lines, so that a test can wait for a line with a deadline.
type chatClient struct {
	t     *testing.T
	name  string
	c     net.Conn
	id    uint64
	lines chan string
}

func dialChat(t *testing.T, name, addr string) *chatClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &chatClient{t: t, name: name, c: c, lines: make(chan string, 1024)}
	t.Cleanup(func() { c.Close() })
	go func() {
		defer close(cl.lines)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cl.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	greeting := cl.next(10 * time.Second)
	idStr, ok := strings.CutPrefix(greeting, "id ")
	if !ok {
		t.Fatalf("%s: greeting %q", name, greeting)
	}
	if cl.id, err = strconv.ParseUint(idStr, 10, 64); err != nil {
		t.Fatal(err)
	}
	return cl
}

// next returns the next line, failing the test after d.
func (cl *chatClient) next(d time.Duration) string {
	cl.t.Helper()
	select {
	case line, ok := <-cl.lines:
		if !ok {
			cl.t.Fatalf("%s: connection closed", cl.name)
		}
		return line
	case <-time.After(d):
		cl.t.Fatalf("%s: no line within %v", cl.name, d)
	}
	return ""
}

// try returns the next line if one comes within d.
func (cl *chatClient) try(d time.Duration) (string, bool) {
	select {
	case line, ok := <-cl.lines:
		return line, ok
	case <-time.After(d):
		return "", false
	}
}

func (cl *chatClient) expect(want string) {
	cl.t.Helper()
	if got := cl.next(10 * time.Second); got != want {
		cl.t.Fatalf("%s read %q, want %q", cl.name, got, want)
	}
}

func (cl *chatClient) send(cmd string) {
	cl.t.Helper()
	cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(cl.c, "%s\n", cmd); err != nil {
		cl.t.Fatal(err)
	}
}

// do sends a command and expects its "ok".
func (cl *chatClient) do(cmd string) {
	cl.t.Helper()
	cl.send(cmd)
	cl.expect("ok")
}

// ask sends a command and returns its answer.
func (cl *chatClient) ask(cmd string) string {
	cl.t.Helper()
	cl.send(cmd)
	return cl.next(10 * time.Second)
}

// nothingElse proves that cl has received nothing unread: a marker sent
// through from must be its very next line (messages from one worker to one
// connection keep their order).
func (cl *chatClient) nothingElse(from *chatClient) {
	cl.t.Helper()
	marker := fmt.Sprintf("marker for %s", cl.name)
	from.do(fmt.Sprintf("send %d %s", cl.id, marker))
	cl.expect(marker)
}

// ensureInterest sends cmd(text) from `from` with a numbered text until
// every client in to has received one, then "done", which each must read
// after nothing but the numbered texts. It is for the moment after a
// subscription on one NATS server, when another server routed to it may
// not know it yet (at-most-once delivery drops what comes before).
func ensureInterest(t *testing.T, from *chatClient, cmd func(text string) string, to ...*chatClient) {
	t.Helper()
	got := make([]bool, len(to))
	deadline := time.Now().Add(15 * time.Second)
	for n := 1; ; n++ {
		from.do(cmd(fmt.Sprintf("probe %d", n)))
		all := true
		for i, c := range to {
			for !got[i] {
				line, ok := c.try(20 * time.Millisecond)
				if !ok {
					break
				}
				if !strings.HasPrefix(line, "probe ") {
					t.Fatalf("%s read %q while probing", c.name, line)
				}
				got[i] = true
			}
			all = all && got[i]
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q from %s: not delivered to all of them within 15 s (%v)", cmd("probe"), from.name, got)
		}
	}
	from.do(cmd("done"))
	for _, c := range to {
		for {
			line := c.next(10 * time.Second)
			if line == "done" {
				break
			}
			if !strings.HasPrefix(line, "probe ") {
				t.Fatalf("%s read %q, want probes then done", c.name, line)
			}
		}
	}
}

// burst sends n numbered texts with cmd and checks that every client in to
// receives all of them, in order, and nothing else.
func burst(t *testing.T, n int, from *chatClient, cmd func(text string) string, to ...*chatClient) {
	t.Helper()
	for i := 0; i < n; i++ {
		from.do(cmd(fmt.Sprintf("%s says %d", from.name, i)))
	}
	for _, c := range to {
		for i := 0; i < n; i++ {
			c.expect(fmt.Sprintf("%s says %d", from.name, i))
		}
	}
}

func toUser(uid string) func(string) string {
	return func(text string) string { return "user " + uid + " " + text }
}

func toGroup(g string) func(string) string {
	return func(text string) string { return "group " + g + " " + text }
}

// askUntil asks cmd until the answer is want (presence counts
// follow the peers' announcements).
func askUntil(t *testing.T, cl *chatClient, cmd, want string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, testkit.Poll, cmd, func() error {
		if got := cl.ask(cmd); got != want {
			return fmt.Errorf("%s: %q, want %q", cmd, got, want)
		}
		return nil
	})
}

// newChatSetup is a goes-master with two chat listeners: "a" (one worker)
// and "b" (two), with the cluster section given.
func newChatSetup(t *testing.T, clusterJSON string) *setup {
	t.Helper()
	return newChatSetupWith(t, clusterJSON, `
    {"name": "a", "listen": "text://127.0.0.1:0", "count": 1, "handler": "chat"},
    {"name": "b", "listen": "text://127.0.0.1:0", "count": 2, "handler": "chat"}`)
}

// newChatSetupWith is a goes-master with the listeners given (JSON array
// elements) and the cluster section given.
func newChatSetupWith(t *testing.T, clusterJSON, listeners string) *setup {
	t.Helper()
	s := &setup{t: t, bin: bin}
	dir := t.TempDir()
	s.runDir = filepath.Join(dir, "run")
	s.conf = filepath.Join(dir, "goes.json")
	conf := fmt.Sprintf(`{
  "log_level": "debug",
  "stop_timeout": "10s",
  "cluster": %s,
  "listeners": [%s
  ]
}`, clusterJSON, listeners)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log")); err == nil {
				t.Logf("goes.log of %s:\n%s", s.runDir, b) // a test may run several masters
			}
		}
	})
	return s
}

// routesOf maps the route of every worker process in st to its pid,
// checking that no two share one. (A draining generation lists the slots
// whose process has exited already without pid and route.)
func routesOf(t *testing.T, st ipc.Status) map[uint32]int {
	t.Helper()
	routes := map[uint32]int{}
	for _, w := range st.Workers {
		if w.PID == 0 {
			continue
		}
		if w.Route == 0 {
			t.Fatalf("worker %d (pid %d) has no route", w.ID, w.PID)
		}
		if pid, dup := routes[w.Route]; dup {
			t.Fatalf("route %d of pid %d and pid %d", w.Route, pid, w.PID)
		}
		routes[w.Route] = w.PID
	}
	return routes
}

// checkIDs checks that connection ids are distinct and carry the route of
// a worker of st.
func checkIDs(t *testing.T, st ipc.Status, cs ...*chatClient) {
	t.Helper()
	routes := routesOf(t, st)
	seen := map[uint64]string{}
	for _, c := range cs {
		if other, dup := seen[c.id]; dup {
			t.Fatalf("%s and %s share id %d", c.name, other, c.id)
		}
		seen[c.id] = c.name
		if _, ok := routes[uint32(c.id>>32)]; !ok {
			t.Fatalf("%s: id %x carries route %d, no worker's (%v)", c.name, c.id, c.id>>32, routes)
		}
	}
}

// TestCluster: clients of two listeners, served by different worker
// processes, reach each other by user, group, connection id and broadcast
// through the NATS server the master embeds; presence counts span them.
// Across a reload, the draining generation and the new one still reach
// each other (the new master's server routes to the old one's), and once
// the old generation is gone the new master drops that route.
func TestCluster(t *testing.T) {
	s := newChatSetup(t, `{"enabled": true}`)
	st := s.start()
	addrs := listenAddrs(t, st)
	if c := st.Master.Cluster; c == nil || !c.Embedded || !strings.HasPrefix(c.URL, "nats://redacted@127.0.0.1:") || c.Prefix != "goes" {
		t.Fatalf("master cluster: %+v", st.Master.Cluster)
	}
	// The embedded NATS wants the token the master gave its workers.
	if nc, err := nats.Connect(strings.Replace(st.Master.Cluster.URL, "redacted@", "", 1), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected to the embedded NATS")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("connect without the token: %v, want an authorization error", err)
	}
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "every node connected", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		for _, w := range cur.Workers {
			if w.Cluster == nil || !w.Cluster.Connected || w.Cluster.Peers != 2 {
				return fmt.Errorf("worker %d: %+v", w.ID, w.Cluster)
			}
		}
		return nil
	})

	// The workers' NATS URL carries the token (their environment is
	// theirs and root's only).
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", st.Workers[0].PID))
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, kv := range strings.Split(string(env), "\x00") {
		if u, ok := strings.CutPrefix(kv, "GOES_CLUSTER_URL=nats://"); ok {
			token, _, _ = strings.Cut(u, "@")
		}
	}
	if len(token) < 32 {
		t.Fatalf("worker's GOES_CLUSTER_URL has no token: %q", token)
	}

	alice := dialChat(t, "alice", addrs["a"])
	bob := dialChat(t, "bob", addrs["b"])
	bob2 := dialChat(t, "bob2", addrs["a"])
	carol := dialChat(t, "carol", addrs["b"])
	checkIDs(t, st, alice, bob, bob2, carol)
	if alice.id>>32 == bob.id>>32 {
		t.Fatal("alice and bob on one worker: the test wants two processes")
	}
	alice.do("login alice")
	bob.do("login bob")
	bob2.do("login bob")
	for _, c := range []*chatClient{alice, bob, carol} {
		c.do("join room")
	}

	burst(t, 5, alice, toUser("bob"), bob, bob2)
	burst(t, 5, carol, toGroup("room"), alice, bob)
	carol.nothingElse(alice) // excluded from its own group message
	bob.do(fmt.Sprintf("send %d direct to alice", alice.id))
	alice.expect("direct to alice")
	alice.do("all everyone")
	for _, c := range []*chatClient{bob, bob2, carol} {
		c.expect("everyone")
	}
	alice.nothingElse(bob)
	if got := carol.ask("online bob"); got != "online true" {
		t.Fatalf("online bob: %q", got)
	}
	if got := carol.ask("online nobody"); got != "online false" {
		t.Fatalf("online nobody: %q", got)
	}
	askUntil(t, alice, "count room", "count 3")
	askUntil(t, alice, "count", "count 4")
	bob2.do("logout")
	burst(t, 3, carol, toUser("bob"), bob)
	bob2.nothingElse(alice)

	// Reload: the clients above stay on the draining generation.
	res := s.mustCLI("reload")
	if !strings.Contains(res.Stdout, "generation 2") {
		t.Fatalf("reload: %s", res)
	}
	var st2 ipc.Status
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "both generations with their nodes", func() error {
		var err error
		if st2, err = s.status(); err != nil {
			return err
		}
		if len(st2.Others) != 1 || st2.Master.Cluster == nil || st2.Master.Cluster.Routes == 0 {
			return fmt.Errorf("others %+v, cluster %+v", st2.Others, st2.Master.Cluster)
		}
		return nil
	})
	routesOf(t, st2) // both generations: no route used twice
	dave := dialChat(t, "dave", addrs["a"])
	erin := dialChat(t, "erin", addrs["b"])
	if old := routesOf(t, st); old[uint32(dave.id>>32)] != 0 || old[uint32(erin.id>>32)] != 0 {
		t.Fatalf("new connections %x %x carry routes of the old generation", dave.id, erin.id)
	}
	dave.do("login dave")
	dave.do("join room")
	erin.do("login erin")

	// Old to new and new to old, by user and by group.
	ensureInterest(t, bob, toUser("dave"), dave)
	burst(t, 5, bob, toUser("dave"), dave)
	ensureInterest(t, erin, toUser("bob"), bob)
	burst(t, 5, erin, toUser("bob"), bob)
	ensureInterest(t, carol, toGroup("room"), alice, bob, dave)
	burst(t, 5, carol, toGroup("room"), alice, bob, dave)
	burst(t, 5, dave, toGroup("room"), alice, bob, carol)
	askUntil(t, erin, "count room", "count 4")
	askUntil(t, erin, "online alice", "online true")
	bob.do(fmt.Sprintf("send %d old to new", erin.id))
	erin.expect("old to new")
	erin.do(fmt.Sprintf("send %d new to old", carol.id))
	carol.expect("new to old")

	// The old generation leaves with its clients; the route to its
	// server is dropped and the new generation serves on.
	for _, c := range []*chatClient{alice, bob, bob2, carol} {
		c.c.Close()
	}
	testkit.Eventually(t, 15*time.Second, testkit.Poll, "old generation gone, route dropped", func() error {
		cur, err := s.status()
		if err != nil {
			return err
		}
		if len(cur.Others) != 0 || cur.Master.Cluster == nil || cur.Master.Cluster.Routes != 0 {
			return fmt.Errorf("others %+v, cluster %+v", cur.Others, cur.Master.Cluster)
		}
		return nil
	})
	burst(t, 3, erin, toUser("dave"), dave)
	askUntil(t, dave, "count", "count 2")
	askUntil(t, dave, "online alice", "online false")
	b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log"))
	if err != nil || strings.Contains(string(b), "route in use") {
		t.Fatalf("log: %v, or a route clash:\n%s", err, b)
	}
	if strings.Contains(string(b), token) {
		t.Fatal("the NATS token is in the log")
	}
	cur, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	cur.Workers = append(cur.Workers, st.Workers...)
	s.stopAndCheck(cur)
}

// TestClusterSharedNATS: two masters (two machines, or two programs) join
// one NATS server through nats_url: their connection ids never collide,
// their clients reach each other, and a reload of one keeps delivering
// while both of its generations use the same NATS.
func TestClusterSharedNATS(t *testing.T) {
	srv := cluster.NewServer(cluster.ServerOptions{Logger: testkit.Logger(t).Level(zerolog.WarnLevel)})
	url, err := srv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	section := fmt.Sprintf(`{"nats_url": %q, "prefix": "app.test"}`, url)
	m1, m2 := newChatSetup(t, section), newChatSetup(t, section)
	st1, st2 := m1.start(), m2.start()
	for _, st := range []ipc.Status{st1, st2} {
		if c := st.Master.Cluster; c == nil || c.Embedded || c.URL != url || c.Prefix != "app.test" {
			t.Fatalf("master cluster: %+v", c)
		}
	}
	a1, a2 := listenAddrs(t, st1), listenAddrs(t, st2)
	both := ipc.Status{Workers: append(append([]ipc.Worker(nil), st1.Workers...), st2.Workers...)}
	routesOf(t, both) // no worker route shared by the two masters

	ann := dialChat(t, "ann", a1["a"])
	ben := dialChat(t, "ben", a2["a"])
	cat := dialChat(t, "cat", a2["b"])
	checkIDs(t, both, ann, ben, cat)
	ann.do("login ann")
	ben.do("login ben")
	for _, c := range []*chatClient{ann, ben, cat} {
		c.do("join g")
	}
	burst(t, 5, ann, toUser("ben"), ben)
	burst(t, 5, ben, toUser("ann"), ann)
	burst(t, 5, cat, toGroup("g"), ann, ben)
	askUntil(t, ann, "count g", "count 3")
	askUntil(t, cat, "online ann", "online true")

	// m1 reloads; its old generation keeps ann, its new one serves dan.
	m1.mustCLI("reload")
	dan := dialChat(t, "dan", a1["b"])
	cur1, err := m1.status()
	if err != nil {
		t.Fatal(err)
	}
	checkIDs(t, ipc.Status{Workers: append(append([]ipc.Worker(nil), cur1.Workers...), st2.Workers...)}, ann, ben, cat, dan)
	dan.do("login dan")
	dan.do("join g")
	burst(t, 5, ann, toUser("dan"), dan)
	burst(t, 5, ben, toGroup("g"), ann, cat, dan)
	askUntil(t, cat, "count g", "count 4")
	for _, s := range []*setup{m1, m2} {
		if b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log")); err != nil || strings.Contains(string(b), "route in use") {
			t.Fatalf("log: %v, or a route clash:\n%s", err, b)
		}
	}
	cur1.Workers = append(cur1.Workers, st1.Workers...)
	m1.stopAndCheck(cur1)
	m2.stopAndCheck(st2)
	if errors.Is(err, nil) {
		return
	}
}

// TestFanOutExactlyOnce: 240 chat connections over four workers join one
// group, 60 of them are bound to one user; one connection that is in
// neither sends 20 messages to the group, 10 to the user and 10 to all,
// then an end marker to the group. Every member reads each message meant
// for it exactly once, in order, before the marker, and nothing after it
// (NATS keeps one publisher's order, and so do the workers' Fanouts). Under go test -race
// the goes-master it runs is built with -race.
func TestFanOutExactlyOnce(t *testing.T) {
	const members, fans, toGroupN, toUserN, toAllN = 240, 60, 20, 10, 10
	s := newChatSetupWith(t, `{"enabled": true}`, `
    {"name": "c", "listen": "text://127.0.0.1:0", "count": 4, "handler": "chat"}`)
	s.bin = proctest.BuildRace(t, ".", "-X main.version="+testVersion) // the workers' Fanouts under -race too
	st := s.start()
	addr := listenAddrs(t, st)["c"]
	var cs []*chatClient
	routes := map[uint64]int{}
	for i := 0; i < members; i++ {
		c := dialChat(t, fmt.Sprintf("m%d", i), addr)
		c.do("join room")
		if i < fans {
			c.do("login fan")
		}
		routes[c.id>>32]++
		cs = append(cs, c)
	}
	if len(routes) < 2 {
		t.Fatalf("all members on one worker (%v): the test wants several", routes)
	}
	pub := dialChat(t, "publisher", addr)
	// Every worker's Node knows the others (the "all" subject and the
	// group are on the one embedded NATS server, subscribed before "ok").
	askUntil(t, pub, "count room", fmt.Sprintf("count %d", members))
	for i := 0; i < toGroupN; i++ {
		pub.do(fmt.Sprintf("group room g%d", i))
	}
	for i := 0; i < toUserN; i++ {
		pub.do(fmt.Sprintf("user fan u%d", i))
	}
	for i := 0; i < toAllN; i++ {
		pub.do(fmt.Sprintf("all a%d", i))
	}
	pub.do("group room end")

	for i, c := range cs {
		var want []string
		for k := 0; k < toGroupN; k++ {
			want = append(want, fmt.Sprintf("g%d", k))
		}
		if i < fans {
			for k := 0; k < toUserN; k++ {
				want = append(want, fmt.Sprintf("u%d", k))
			}
		}
		for k := 0; k < toAllN; k++ {
			want = append(want, fmt.Sprintf("a%d", k))
		}
		want = append(want, "end")
		for _, w := range want {
			c.expect(w)
		}
		c.nothingElse(pub) // and the end once only
	}
	st, err := s.status()
	if err != nil {
		t.Fatal(err)
	}
	s.stopAndCheck(st)
	// The workers' output, race reports included, is in the master's log.
	if b, err := os.ReadFile(filepath.Join(s.runDir, "goes.log")); err != nil || bytes.Contains(b, []byte("DATA RACE")) {
		t.Fatalf("log: %v, or a data race reported:\n%s", err, b)
	}
}
