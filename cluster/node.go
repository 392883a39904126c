package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// Conn is what a Node needs of a connection; connections.Connection
// satisfies it. Its methods must be safe for concurrent use, SendBytes must
// not block on the network and must not keep data after it returns.
type Conn interface {
	// ID carries the connection's route in its high 32 bits: the Node
	// that Adds it must have the same route (NodeOptions.IDBase).
	ID() uint64
	// SendBytes encodes data with the connection's protocol (raw false) and
	// queues it.
	SendBytes(data []byte, raw bool) error
	// Close closes the connection once what was queued is written.
	Close() error
}

// Node errors.
var (
	// ErrClosed: the Node was closed.
	ErrClosed = errors.New("cluster: node closed")
	// ErrUnknownConnection: the connection was not added to this Node (or
	// was removed).
	ErrUnknownConnection = errors.New("cluster: connection not added to this node")
	// ErrForeignConnection: the connection's id does not carry this Node's
	// route (its high 32 bits differ from NodeOptions.IDBase's).
	ErrForeignConnection = errors.New("cluster: connection id does not carry this node's route")
	// ErrRouteInUse: another live Node answers for this Node's route, so
	// connection ids would collide: the route given in IDBase is not unique
	// in the cluster (start again with another).
	ErrRouteInUse = errors.New("cluster: another node serves this route")
	// ErrPartial: some Nodes did not answer a presence query within
	// NodeOptions.RequestTimeout; the count returned with it covers the
	// Nodes that did (a lower bound).
	ErrPartial = errors.New("cluster: some nodes did not answer")
	// ErrBadPrefix: NodeOptions.Prefix is not dot-separated tokens of
	// letters, digits, '-' and '_'.
	ErrBadPrefix = errors.New("cluster: bad subject prefix")
)

// Defaults of NodeOptions.
const (
	DefaultPrefix           = "goes"
	DefaultRequestTimeout   = time.Second
	DefaultHeartbeat        = 2 * time.Second
	DefaultQueueSize        = 1 << 16
	DefaultReconnectWait    = 50 * time.Millisecond
	DefaultMaxReconnectWait = 2 * time.Second
	DefaultDrainTimeout     = 5 * time.Second
)

// minPingInterval bounds how often a Node pings its NATS server.
const minPingInterval = 500 * time.Millisecond

// NodeOptions configure a Node. URL is required; every other field's zero
// value works.
type NodeOptions struct {
	// URL is the NATS server to connect to: the embedded Server's URL, or
	// an existing cluster's ("nats://a:4222,nats://b:4222").
	URL string
	// Name names the Node in NATS (the connection name) and in logs
	// (default: host name "/" route).
	Name string
	// IDBase is connections.Config.IDBase of the worker. Its high 32 bits
	// are the Node's route: a connection id names the Node that holds it.
	IDBase uint64
	// Prefix namespaces every subject, so several applications can share
	// one NATS (default DefaultPrefix, "goes").
	Prefix string
	// RequestTimeout bounds presence queries (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// Heartbeat is the period at which the Node tells the others it lives,
	// as long as it knows of at most 16 Nodes (itself included); beyond,
	// the period grows with their number (Heartbeat times Nodes/16,
	// rounded up: 53 Nodes, 4 Heartbeats), so that every Node hears about
	// 16 announcements per Heartbeat whatever the cluster's size. A Node
	// silent for three of its periods is no longer waited for by presence
	// queries. Every Node of one prefix must use the same Heartbeat
	// (default DefaultHeartbeat). It also paces the Node's NATS pings, two per
	// period (at most one per 500 ms): when its server leaves two
	// unanswered, or does not take a write within a period, the Node drops
	// the connection and reconnects (to another server of the cluster when
	// it knows one), so a Node whose link died without a word is back
	// before the others forget it.
	Heartbeat time.Duration
	// QueueSize is the number of received messages that may wait for
	// delivery to local connections; past it NATS drops messages (a slow
	// consumer, counted in Stats) (default DefaultQueueSize).
	QueueSize int
	// ReconnectWait is the first reconnect delay, doubled at every failed
	// attempt up to MaxReconnectWait, with jitter. Reconnection never stops
	// (defaults DefaultReconnectWait, DefaultMaxReconnectWait).
	ReconnectWait, MaxReconnectWait time.Duration
	// DrainTimeout bounds Close's drain (default DefaultDrainTimeout).
	DrainTimeout time.Duration
	// NATSOptions are extra nats.go options (credentials, TLS, ...). They
	// may change the ping and write timeouts (see Heartbeat); the Node's
	// own name, reconnect and handler options are applied after them and
	// win.
	NATSOptions []nats.Option
	// Logger receives the Node's lifecycle events.
	Logger zerolog.Logger
	// FanOut, when set, delivers one message to several of this Node's
	// connections at once (a group's, a user's, all of them) in place of
	// a SendBytes on each, and returns how many took it. goes sets it to
	// a connections.Fanout, which encodes the message once for all of
	// them. It is called from the Node's delivery goroutine only, and
	// must not call the Node.
	FanOut func(conns []Conn, data []byte) (sent int)
}

// Stats are a Node's counters.
type Stats struct {
	Connections int    // connections added to this Node now
	Topics      int    // users and groups with members on this Node now
	Peers       int    // other Nodes known alive
	Delivered   uint64 // messages handed to local connections
	NotHere     uint64 // messages for connection ids this Node does not hold
	SendErrors  uint64 // deliveries the connection refused (buffer full, closed)
	Malformed   uint64 // received messages this package did not write
	Dropped     uint64 // slow-consumer events: NATS dropped messages for this Node
}

// Node connects one worker to the others, on this machine and on others,
// through NATS. The worker Adds its connections (OnConnect) and Removes
// them (OnClose); any worker can then send to any connection id, user or
// group, and ask who is online.
//
// Delivery is at most once (NATS core): a message is lost when the target
// Node is down or unreachable, when NATS drops it (disconnection past the
// reconnect buffer, a slow consumer), when the connection is gone or its
// send buffer is full, or when it overtakes the subscription it needs.
// BindUser and JoinGroup return before their NATS server has the
// subscription (Flush waits for it), and other servers of a cluster learn
// it a route round trip later: a message sent to the user or group by
// another Node at that very moment may miss the new member. Nothing is
// acknowledged or retried. Messages from one Node to one connection keep
// their order. Every message goes through NATS, even to a connection of the
// same Node, so that order holds across the Send* methods.
//
// Every method is safe for concurrent use. Delivery to the local connections
// runs on one goroutine, which calls Conn.SendBytes and Conn.Close; Conn
// callbacks that run synchronously inside them may call the Node.
type Node struct {
	o         NodeOptions
	log       zerolog.Logger
	route     uint32
	nc        *nats.Conn
	ch        chan *nats.Msg
	subjRoute string // <prefix>.c.<route>
	subjAll   string // <prefix>.all
	subjUser  string // <prefix>.u.
	subjGroup string // <prefix>.g.

	started      atomic.Bool // NewNode is done
	closing      atomic.Bool
	stop         chan struct{} // closed by Close: stops the heartbeat
	ncClosed     chan struct{} // closed once the NATS connection is closed
	ncCloseOnce  sync.Once
	beatDone     chan struct{}
	dispatchDone chan struct{}
	closeErr     error

	// Lock order: the three locks are leaves, never held together: no
	// path takes one while holding another (Stats takes mu, then peerMu,
	// one after the other). mu guards the membership tables; it is held
	// across the NATS client's ChanSubscribe and Unsubscribe (joinLocked,
	// leaveLocked), which do not call back into the Node, and never
	// across a Conn's Send: the dispatcher copies what it delivers to
	// under mu.RLock and sends after RUnlock. peerMu guards the peer
	// table; rsMu caches route subjects (routeSubject, taken after mu is
	// released). A new lock goes after these, or the note says otherwise.
	mu     sync.RWMutex
	conns  map[uint64]*entry
	topics map[string]*topic // by subject: users and groups

	peerMu   sync.Mutex
	peers    map[uint32]*peer
	left     map[uint32]struct{} // peers that said bye during join; nil outside it
	peerNews chan struct{}       // a peer came or went: wakes join

	rsMu   sync.RWMutex
	routes map[uint32]string // route subjects of other Nodes

	scratch []Conn // dispatcher only

	delivered, notHere, sendErrors, malformed, dropped atomic.Uint64
}

type entry struct {
	c      Conn
	user   string              // user subject, "" when unbound
	groups map[string]struct{} // group subjects
}

type topic struct {
	sub   *nats.Subscription
	conns map[uint64]Conn
}

type peer struct {
	name      string
	seen      time.Time
	listening bool          // it has joined: it answers on the all subject
	period    time.Duration // how often it announces itself (beatPeriod of the count it last sent)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// NewNode connects to NATS and returns a running Node. It fails with
// ErrRouteInUse when a live Node already answers for IDBase's route.
// Before it returns, the server knows the Node's route (messages to its
// connections reach it) and the Node knows about as many other Nodes as
// the best informed of those that answered its introduction knows (a Node
// that hung, or died and is not yet known dead, makes it wait for
// RequestTimeout; NATS tells at once when there is none). When NATS
// cannot be reached it still returns the Node, which keeps reconnecting
// (nats.go buffers what is sent meanwhile, up to its reconnect buffer) and
// introduces itself once connected.
func NewNode(o NodeOptions) (*Node, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !validPrefix(o.Prefix) {
		return nil, fmt.Errorf("%w %q", ErrBadPrefix, o.Prefix)
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "localhost"
		}
		o.Name = host + "/" + strconv.FormatUint(o.IDBase>>32, 10)
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
	if o.MaxReconnectWait <= 0 {
		o.MaxReconnectWait = DefaultMaxReconnectWait
	}
	if o.MaxReconnectWait < o.ReconnectWait {
		o.MaxReconnectWait = o.ReconnectWait
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	route := uint32(o.IDBase >> 32)
	n := &Node{
		o:            o,
		log:          o.Logger.With().Str("node", o.Name).Logger(),
		route:        route,
		ch:           make(chan *nats.Msg, o.QueueSize),
		subjRoute:    routeSubject(o.Prefix, route),
		subjAll:      o.Prefix + ".all",
		subjUser:     o.Prefix + ".u.",
		subjGroup:    o.Prefix + ".g.",
		stop:         make(chan struct{}),
		ncClosed:     make(chan struct{}),
		beatDone:     make(chan struct{}),
		dispatchDone: make(chan struct{}),
		conns:        make(map[uint64]*entry),
		topics:       make(map[string]*topic),
		peers:        make(map[uint32]*peer),
		peerNews:     make(chan struct{}, 1),
		routes:       make(map[uint32]string),
	}

	// A server that hangs, or a link that drops everything, closes
	// nothing: only pings and write deadlines tell. NATS's defaults (a
	// ping every two minutes, writes that may block for one) would leave
	// the Node there, losing every message and blocking its callers'
	// Send*, for minutes. NATSOptions may change these.
	// The Node pings twice per Heartbeat, so that it gives a dead link up
	// (within 1.5 Heartbeat) and rejoins before the others forget it
	// (after 3); not more often than minPingInterval, so that a Heartbeat
	// made short for a test does not turn a pause into a reconnection.
	ping := max(o.Heartbeat/2, minPingInterval)
	opts := []nats.Option{
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(2),
		nats.FlusherTimeout(2 * ping),
		nats.ReconnectOnFlusherError(),
	}
	opts = append(opts, o.NATSOptions...)
	opts = append(opts,
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(n.backoff),
		nats.DrainTimeout(o.DrainTimeout),
		nats.ConnectHandler(n.onConnect),
		nats.ReconnectHandler(n.onConnect),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !n.closing.Load() {
				n.log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Debug().Err(err).Msg("nats reconnect attempt failed")
		}),
		nats.ClosedHandler(func(*nats.Conn) { n.ncCloseOnce.Do(func() { close(n.ncClosed) }) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.dropped.Add(1)
			}
			n.log.Warn().Err(err).Msg("nats async error")
		}),
	)
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", RedactURL(o.URL), err)
	}
	n.nc = nc
	fail := func(err error) (*Node, error) {
		n.closing.Store(true)
		nc.Close()
		return nil, err
	}
	if nc.IsConnected() {
		// Claim the route: nobody may answer on it.
		_, err := nc.Request(n.subjRoute, []byte{opPing}, o.RequestTimeout)
		switch {
		case err == nil:
			return fail(fmt.Errorf("%w: %s (route %d)", ErrRouteInUse, n.subjRoute, route))
		case errors.Is(err, nats.ErrNoResponders):
		default:
			n.log.Warn().Err(err).Str("subject", n.subjRoute).Msg("route claim not confirmed")
		}
	} else {
		n.log.Warn().Str("url", RedactURL(o.URL)).Msg("nats not reachable yet, reconnecting")
	}
	if _, err := nc.ChanSubscribe(n.subjRoute, n.ch); err != nil {
		return fail(fmt.Errorf("cluster: subscribe %s: %w", n.subjRoute, err))
	}
	var ask *joinRequest
	if nc.IsConnected() {
		ask = n.askPeers()
	}
	if _, err := nc.ChanSubscribe(n.subjAll, n.ch); err != nil {
		return fail(fmt.Errorf("cluster: subscribe %s: %w", n.subjAll, err))
	}
	go n.dispatch()
	if ask != nil {
		n.join(ask)
		// Joined: the others count this Node in what they tell the
		// Nodes that join after it.
		n.announce(opHello)
	}
	if nc.IsConnected() {
		// Once NewNode returns, the server knows the route: a message sent
		// to one of this worker's connections by a client of the same
		// server cannot overtake the subscription.
		if err := nc.FlushTimeout(o.RequestTimeout); err != nil {
			n.log.Warn().Err(err).Msg("nats flush failed")
		}
	}
	go n.heartbeat()
	n.started.Store(true)
	n.log.Info().Str("url", RedactURL(o.URL)).Str("route", n.subjRoute).Int("peers", n.peerCount()).Msg("cluster node started")
	return n, nil
}

// Name is the Node's name.
func (n *Node) Name() string { return n.o.Name }

// Connected reports whether the Node is connected to NATS now.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Peers returns the names of the other Nodes this Node knows alive, sorted.
func (n *Node) Peers() []string {
	n.peerMu.Lock()
	names := make([]string, 0, len(n.peers))
	for _, p := range n.peers {
		names = append(names, p.name)
	}
	n.peerMu.Unlock()
	sort.Strings(names)
	return names
}

// Stats returns the Node's counters.
func (n *Node) Stats() Stats {
	n.mu.RLock()
	st := Stats{Connections: len(n.conns), Topics: len(n.topics)}
	n.mu.RUnlock()
	n.peerMu.Lock()
	st.Peers = len(n.peers)
	n.peerMu.Unlock()
	st.Delivered = n.delivered.Load()
	st.NotHere = n.notHere.Load()
	st.SendErrors = n.sendErrors.Load()
	st.Malformed = n.malformed.Load()
	st.Dropped = n.dropped.Load()
	return st
}

// Flush waits until the NATS server has processed everything this Node sent
// so far, subscriptions included (bounded by RequestTimeout): after it, a
// message published by any client of the same server reaches the users and
// groups joined before. It costs a round trip; the Send* methods and
// JoinGroup/BindUser do not need it.
func (n *Node) Flush() error {
	if n.closing.Load() {
		return ErrClosed
	}
	if err := n.nc.FlushTimeout(n.o.RequestTimeout); err != nil {
		return fmt.Errorf("cluster: flush: %w", err)
	}
	return nil
}

// Close leaves the cluster: it tells the other Nodes, unsubscribes, delivers
// the messages already received, sends what is buffered and closes the NATS
// connection (bounded by DrainTimeout). It does not close the connections.
// Calling it again returns the first call's result once that is done.
func (n *Node) Close() error {
	if !n.closing.CompareAndSwap(false, true) {
		<-n.dispatchDone
		return n.closeErr
	}
	n.announce(opBye)
	close(n.stop)
	<-n.beatDone
	if err := n.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionReconnecting) {
		n.closeErr = fmt.Errorf("cluster: drain: %w", err)
		n.nc.Close()
	}
	t := time.NewTimer(n.o.DrainTimeout + time.Second)
	select {
	case <-n.ncClosed:
	case <-t.C:
		// A ClosedHandler that never ran (a user option suppressing it).
		n.nc.Close()
		n.ncCloseOnce.Do(func() { close(n.ncClosed) })
	}
	t.Stop()
	<-n.dispatchDone
	n.log.Info().Msg("cluster node stopped")
	return n.closeErr
}

// Add registers a connection of this worker so that messages for its id
// reach it. Call it from OnConnect. Adding a connection twice is harmless.
// It fails with ErrForeignConnection when the id's route is not this Node's.
func (n *Node) Add(c Conn) error {
	id := c.ID()
	if uint32(id>>32) != n.route {
		return fmt.Errorf("%w: connection %d", ErrForeignConnection, id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing.Load() {
		return ErrClosed
	}
	if _, ok := n.conns[id]; !ok {
		n.conns[id] = &entry{c: c}
	}
	return nil
}

// Remove unregisters a connection, unbinds its user and leaves its groups.
// Call it from OnClose. Removing an unknown connection is harmless.
func (n *Node) Remove(c Conn) {
	id := c.ID()
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.conns[id]
	if e == nil {
		return
	}
	delete(n.conns, id)
	if e.user != "" {
		n.leaveLocked(e.user, id)
	}
	for g := range e.groups {
		n.leaveLocked(g, id)
	}
}

// BindUser binds a connection to a user id: SendToUser(uid) then reaches
// it, and every other connection bound to uid on any Node. A connection has
// one user; binding again replaces it. uid is any non-empty string of up to
// 256 bytes.
func (n *Node) BindUser(c Conn, uid string) error {
	tok, err := token(uid)
	if err != nil {
		return err
	}
	subj := n.subjUser + tok
	id := c.ID()
	n.mu.Lock()
	defer n.mu.Unlock()
	e, err := n.entryLocked(id)
	if err != nil {
		return err
	}
	if e.user == subj {
		return nil
	}
	if err := n.joinLocked(subj, id, e.c); err != nil {
		return fmt.Errorf("cluster: bind user %q: %w", uid, err)
	}
	if e.user != "" {
		n.leaveLocked(e.user, id)
	}
	e.user = subj
	return nil
}

// UnbindUser undoes BindUser. Unbinding an unbound connection is harmless.
func (n *Node) UnbindUser(c Conn) error {
	id := c.ID()
	n.mu.Lock()
	defer n.mu.Unlock()
	e, err := n.entryLocked(id)
	if err != nil {
		return err
	}
	if e.user != "" {
		n.leaveLocked(e.user, id)
		e.user = ""
	}
	return nil
}

// JoinGroup adds a connection to a group: SendToGroup(group) then reaches
// it. A connection may join any number of groups. group is any non-empty
// string of up to 256 bytes.
func (n *Node) JoinGroup(c Conn, group string) error {
	tok, err := token(group)
	if err != nil {
		return err
	}
	subj := n.subjGroup + tok
	id := c.ID()
	n.mu.Lock()
	defer n.mu.Unlock()
	e, err := n.entryLocked(id)
	if err != nil {
		return err
	}
	if _, ok := e.groups[subj]; ok {
		return nil
	}
	if err := n.joinLocked(subj, id, e.c); err != nil {
		return fmt.Errorf("cluster: join group %q: %w", group, err)
	}
	if e.groups == nil {
		e.groups = make(map[string]struct{}, 1)
	}
	e.groups[subj] = struct{}{}
	return nil
}

// LeaveGroup removes a connection from a group. Leaving a group the
// connection is not in is harmless.
func (n *Node) LeaveGroup(c Conn, group string) error {
	tok, err := token(group)
	if err != nil {
		return err
	}
	subj := n.subjGroup + tok
	id := c.ID()
	n.mu.Lock()
	defer n.mu.Unlock()
	e, err := n.entryLocked(id)
	if err != nil {
		return err
	}
	if _, ok := e.groups[subj]; ok {
		delete(e.groups, subj)
		n.leaveLocked(subj, id)
	}
	return nil
}

func (n *Node) entryLocked(id uint64) (*entry, error) {
	if n.closing.Load() {
		return nil, ErrClosed
	}
	e := n.conns[id]
	if e == nil {
		return nil, fmt.Errorf("%w: connection %d", ErrUnknownConnection, id)
	}
	return e, nil
}

// joinLocked adds a member to a topic, subscribing to it for the first one.
func (n *Node) joinLocked(subj string, id uint64, c Conn) error {
	t := n.topics[subj]
	if t == nil {
		sub, err := n.nc.ChanSubscribe(subj, n.ch)
		if err != nil {
			return err
		}
		t = &topic{sub: sub, conns: make(map[uint64]Conn, 1)}
		n.topics[subj] = t
	}
	t.conns[id] = c
	return nil
}

// leaveLocked removes a member, unsubscribing after the last one.
func (n *Node) leaveLocked(subj string, id uint64) {
	t := n.topics[subj]
	if t == nil {
		return
	}
	delete(t.conns, id)
	if len(t.conns) == 0 {
		delete(n.topics, subj)
		if err := t.sub.Unsubscribe(); err != nil && !n.closing.Load() {
			n.log.Debug().Err(err).Str("subject", subj).Msg("unsubscribe failed")
		}
	}
}

// SendToConnection sends data to the connection with that id, on whichever
// Node of the cluster holds it; the connection's protocol encodes it. The
// id names its Node, so nothing is looked up. A nil error means the message
// was handed to NATS, not that it arrived (see Node).
func (n *Node) SendToConnection(id uint64, data []byte) error {
	if n.closing.Load() {
		return ErrClosed
	}
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], opSend)
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, data...)
	err := n.nc.Publish(n.routeSubject(uint32(id>>32)), b)
	putBuf(bp, b)
	if err != nil {
		return fmt.Errorf("cluster: send to connection %d: %w", id, err)
	}
	return nil
}

// CloseConnection closes the connection with that id, on whichever Node
// holds it, once what was queued for it is written.
func (n *Node) CloseConnection(id uint64) error {
	if n.closing.Load() {
		return ErrClosed
	}
	var b [9]byte
	b[0] = opClose
	binary.BigEndian.PutUint64(b[1:], id)
	if err := n.nc.Publish(n.routeSubject(uint32(id>>32)), b[:]); err != nil {
		return fmt.Errorf("cluster: close connection %d: %w", id, err)
	}
	return nil
}

// SendToUser sends data to every connection bound to uid, on every Node.
func (n *Node) SendToUser(uid string, data []byte) error {
	tok, err := token(uid)
	if err != nil {
		return err
	}
	if err := n.publishExcluding(n.subjUser+tok, data, nil); err != nil {
		return fmt.Errorf("cluster: send to user %q: %w", uid, err)
	}
	return nil
}

// SendToGroup sends data to every connection in group, on every Node, but
// the connections whose ids are in exclude.
func (n *Node) SendToGroup(group string, data []byte, exclude ...uint64) error {
	tok, err := token(group)
	if err != nil {
		return err
	}
	if err := n.publishExcluding(n.subjGroup+tok, data, exclude); err != nil {
		return fmt.Errorf("cluster: send to group %q: %w", group, err)
	}
	return nil
}

// Broadcast sends data to every connection of every Node, but the
// connections whose ids are in exclude.
func (n *Node) Broadcast(data []byte, exclude ...uint64) error {
	if err := n.publishExcluding(n.subjAll, data, exclude); err != nil {
		return fmt.Errorf("cluster: broadcast: %w", err)
	}
	return nil
}

func (n *Node) publishExcluding(subj string, data []byte, exclude []uint64) error {
	if n.closing.Load() {
		return ErrClosed
	}
	if len(exclude) > maxExclude {
		return fmt.Errorf("%d excluded connections, at most %d", len(exclude), maxExclude)
	}
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], opSend)
	b = appendIDs(b, exclude)
	b = append(b, data...)
	err := n.nc.Publish(subj, b)
	putBuf(bp, b)
	return err
}

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}

// routeSubject returns the route subject of route r, cached.
func (n *Node) routeSubject(r uint32) string {
	if r == n.route {
		return n.subjRoute
	}
	n.rsMu.RLock()
	s, ok := n.routes[r]
	n.rsMu.RUnlock()
	if ok {
		return s
	}
	s = routeSubject(n.o.Prefix, r)
	n.rsMu.Lock()
	if len(n.routes) >= 4096 {
		clear(n.routes)
	}
	n.routes[r] = s
	n.rsMu.Unlock()
	return s
}

// backoff is the reconnect delay: ReconnectWait doubled per attempt up to
// MaxReconnectWait, plus up to a quarter of jitter.
func (n *Node) backoff(attempts int) time.Duration {
	d := n.o.ReconnectWait
	for i := 1; i < attempts && d < n.o.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, n.o.MaxReconnectWait)
	return d + rand.N(d/4+1)
}

// onConnect runs on nats.go's callback goroutine after a (re)connection:
// a Node that started, or that missed announcements while away, introduces
// itself again; the peers answer on its route.
func (n *Node) onConnect(nc *nats.Conn) {
	n.log.Info().Str("server", RedactURL(nc.ConnectedUrl())).Msg("nats connected")
	if !n.started.Load() || n.closing.Load() {
		return
	}
	if err := nc.Publish(n.subjAll, n.member(opHello, n.route)); err != nil {
		n.log.Debug().Err(err).Msg("hello failed")
	}
}

// member returns an opHello, opBeat or opBye message about this Node, for
// the Node with route to (or for all when to is this Node's route).
func (n *Node) member(op byte, to uint32) []byte {
	n.peerMu.Lock()
	known := uint32(1)
	for r, p := range n.peers {
		if p.listening && r != to {
			known++
		}
	}
	n.peerMu.Unlock()
	b := make([]byte, 0, 9+len(n.o.Name))
	return appendMember(append(b, op), n.route, known, n.o.Name)
}

// announce publishes opHello, opBeat or opBye on the all subject.
func (n *Node) announce(op byte) {
	n.publish(n.subjAll, n.member(op, n.route))
}

// joinRequest is a join under way: the inbox the answers come to.
type joinRequest struct {
	inbox   string
	sub     *nats.Subscription
	replies chan *nats.Msg
}

// askPeers starts the join (see join): it sends this Node's hello as a
// request on the all subject before the Node listens there, so that NATS
// answers "no responders" at once when there is no other Node. It returns
// nil when NATS refused.
func (n *Node) askPeers() *joinRequest {
	jr := &joinRequest{inbox: n.nc.NewInbox(), replies: make(chan *nats.Msg, 4096)}
	var err error
	if jr.sub, err = n.nc.ChanSubscribe(jr.inbox, jr.replies); err != nil {
		n.log.Warn().Err(err).Msg("cluster join failed")
		return nil
	}
	n.peerMu.Lock()
	n.left = make(map[uint32]struct{})
	n.peerMu.Unlock()
	if err := n.nc.PublishRequest(n.subjAll, jr.inbox, n.member(opHello, n.route)); err != nil {
		n.log.Warn().Err(err).Msg("cluster join failed")
		n.endJoin(jr)
		return nil
	}
	return jr
}

// endJoin drops the join's inbox and stops recording byes for it.
func (n *Node) endJoin(jr *joinRequest) {
	jr.sub.Unsubscribe()
	n.peerMu.Lock()
	n.left = nil
	n.peerMu.Unlock()
}

// join asks the Nodes already there to introduce themselves and waits
// until it has heard of as many Nodes as the best informed answer counts
// (known: the Nodes that answerer knows have joined), or RequestTimeout.
// The Node asks twice on the same inbox: askPeers before it listens on the
// all subject (NATS tells at once when nobody else does: then it is alone
// and join returns), and join once it listens (its own subscription then
// takes the request too, so NATS never says "no responders" again). Every
// Node answers both; duplicates are harmless.
//
// The second request is what makes the count reachable. A NATS server
// matches a message's subscribers and then hands it to them one by one;
// another client's subscription and publication can slip in between. So an
// answerer may already have heard the hello of a Node P when a request
// reaches it, although P was not subscribed yet when the request was
// matched and will never answer it (seen under load in TestConcurrentJoins:
// the joiner waited for such a P until its timeout). Every P counted in an
// answer is heard of all the same: either P's subscription to the all
// subject reached the server before the second request was matched (P
// answers it), or after, and so after this Node's own subscription: then
// what P publishes on the all subject from then on (its hello, its
// heartbeats, its bye) reaches this Node's dispatcher, which records it and
// wakes join. A Node that leaves once this Node listens counts as heard of
// through its bye. What is left makes the join wait for RequestTimeout: a
// counted Node that hangs, one that died without a bye and that the others
// still count (until it misses three heartbeats), one that leaves in the
// instant between the two requests.
//
// The count is of Nodes, not a list: Nodes heard of that no answer counts
// (others joining now) may end the wait before a counted one is heard of;
// that one then answers this Node's plain hello, as every Node does.
func (n *Node) join(jr *joinRequest) {
	defer n.endJoin(jr)
	if err := n.nc.PublishRequest(n.subjAll, jr.inbox, n.member(opHello, n.route)); err != nil {
		n.log.Warn().Err(err).Msg("cluster join failed")
		return
	}
	t := time.NewTimer(n.o.RequestTimeout)
	defer t.Stop()
	want, answered := 1, false
	for {
		select {
		case m := <-jr.replies:
			if m.Header.Get("Status") == "503" { // no responders: alone
				return
			}
			r, known, name, err := parseMember(m.Data[min(1, len(m.Data)):])
			if err != nil || len(m.Data) == 0 || m.Data[0] != opBeat {
				n.malformed.Add(1)
				continue
			}
			n.sawPeer(r, name, true, known)
			want = max(want, int(known))
			answered = true
		case <-n.peerNews:
		case <-t.C:
			n.log.Warn().Int("known", n.peerCount()).Int("announced", want).Msg("cluster join incomplete, heartbeats will tell the rest")
			return
		}
		// Until an answer comes, want says nothing: the Nodes heard of
		// may all be joining too.
		if answered && n.heardCount() >= want {
			return
		}
	}
}

// beatFanIn is how many announcements a Node hears per Heartbeat from the
// others, at most, whatever the number of Nodes (see beatPeriod).
const beatFanIn = 16

// beatPeriod is how often a Node that knows of known Nodes (itself
// included) announces itself: every Heartbeat up to beatFanIn Nodes, and
// every Heartbeat times known/beatFanIn (rounded up) beyond, so that each
// Node hears about beatFanIn announcements per Heartbeat (N Nodes each
// announcing every Heartbeat to all the others were N² deliveries: 53
// workers, 1,400 a second). Its announcements carry known, so the others
// know the period of each Node and forget one silent for three of its
// periods.
func beatPeriod(heartbeat time.Duration, known uint32) time.Duration {
	return heartbeat * time.Duration(max(1, (int64(known)+beatFanIn-1)/beatFanIn))
}

func (n *Node) heartbeat() {
	defer close(n.beatDone)
	t := time.NewTimer(n.o.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			b := n.member(opBeat, n.route)
			_, known, _, _ := parseMember(b[1:])
			n.publish(n.subjAll, b)
			n.prunePeers(now)
			t.Reset(beatPeriod(n.o.Heartbeat, known))
		}
	}
}

// prunePeers forgets the Nodes silent for three of their periods.
func (n *Node) prunePeers(now time.Time) {
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	for r, p := range n.peers {
		if now.Sub(p.seen) > 3*p.period {
			delete(n.peers, r)
			n.log.Warn().Str("peer", p.name).Msg("cluster peer silent, forgotten")
		}
	}
}

// sawPeer records a message from the Node with route; listening says it
// hears the all subject (it has joined).
// known is the count of Nodes its message carried, which sets its period.
func (n *Node) sawPeer(route uint32, name string, listening bool, known uint32) (isNew bool) {
	if route == n.route {
		return false
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	p := n.peers[route]
	if p == nil {
		p = &peer{}
		n.peers[route] = p
		isNew = true
	}
	p.name, p.seen = name, time.Now()
	p.period = beatPeriod(n.o.Heartbeat, known)
	p.listening = p.listening || listening
	if isNew {
		n.tellPeerNews()
	}
	return isNew
}

// tellPeerNews wakes join, if it waits; peerMu is held.
func (n *Node) tellPeerNews() {
	select {
	case n.peerNews <- struct{}{}:
	default:
	}
}

func (n *Node) peerCount() int {
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	return len(n.peers)
}

// forgetPeer drops the Node with route, which said bye; during join it
// still counts as heard of (heardCount).
func (n *Node) forgetPeer(route uint32) {
	if route == n.route {
		return
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	delete(n.peers, route)
	if n.left != nil {
		n.left[route] = struct{}{}
		n.tellPeerNews()
	}
}

// heardCount is the number of Nodes join has heard of: those known alive and
// those that left since it began.
func (n *Node) heardCount() int {
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	c := len(n.peers)
	for r := range n.left {
		if _, ok := n.peers[r]; !ok {
			c++
		}
	}
	return c
}
