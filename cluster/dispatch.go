package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// dispatch delivers received messages, in order, until the NATS connection
// is closed; then it delivers what is still queued and returns.
func (n *Node) dispatch() {
	defer close(n.dispatchDone)
	for {
		select {
		case m := <-n.ch:
			n.handle(m)
		case <-n.ncClosed:
			for {
				select {
				case m := <-n.ch:
					n.handle(m)
				default:
					return
				}
			}
		}
	}
}

func (n *Node) handle(m *nats.Msg) {
	if len(m.Data) == 0 {
		n.malformed.Add(1)
		return
	}
	op, body := m.Data[0], m.Data[1:]
	var err error
	switch m.Subject {
	case n.subjRoute:
		err = n.handleRoute(m, op, body)
	case n.subjAll:
		err = n.handleAll(m, op, body)
	default:
		err = n.handleTopic(m, op, body)
	}
	if err != nil {
		n.malformed.Add(1)
		n.log.Debug().Err(err).Str("subject", m.Subject).Uint8("op", op).Msg("message dropped")
	}
}

func (n *Node) handleRoute(m *nats.Msg, op byte, body []byte) error {
	switch op {
	case opPing:
		n.respond(m, []byte{1})
		return nil
	case opBeat:
		r, known, name, err := parseMember(body)
		if err == nil {
			n.sawPeer(r, name, true, known)
		}
		return err
	}
	if len(body) < 8 {
		return errMalformed
	}
	id := binary.BigEndian.Uint64(body)
	n.mu.RLock()
	var c Conn
	if e := n.conns[id]; e != nil {
		c = e.c
	}
	n.mu.RUnlock()
	switch op {
	case opSend:
		n.deliver(c, body[8:])
	case opClose:
		if c != nil {
			c.Close()
		} else {
			n.notHere.Add(1)
		}
	case opOnline:
		var yes byte
		if c != nil {
			yes = 1
		}
		n.respond(m, []byte{yes})
	default:
		return errMalformed
	}
	return nil
}

func (n *Node) handleTopic(m *nats.Msg, op byte, body []byte) error {
	switch op {
	case opSend:
		ids, data, err := parseExcluded(body)
		if err != nil {
			return err
		}
		n.mu.RLock()
		if t := n.topics[m.Subject]; t != nil {
			for id, c := range t.conns {
				if !excluded(ids, id) {
					n.scratch = append(n.scratch, c)
				}
			}
		}
		n.mu.RUnlock()
		n.fanOut(data)
	default:
		return errMalformed
	}
	return nil
}

func (n *Node) handleAll(m *nats.Msg, op byte, body []byte) error {
	switch op {
	case opSend:
		ids, data, err := parseExcluded(body)
		if err != nil {
			return err
		}
		n.mu.RLock()
		for id, e := range n.conns {
			if !excluded(ids, id) {
				n.scratch = append(n.scratch, e.c)
			}
		}
		n.mu.RUnlock()
		n.fanOut(data)
	case opHello:
		r, known, name, err := parseMember(body)
		if err != nil {
			return err
		}
		if r == n.route {
			return nil
		}
		// A hello sent as a request comes from a Node still joining, which
		// may not listen on the all subject yet (its first request goes
		// out before it subscribes; Nodes of older versions subscribed
		// only after their join): it is counted in the "known" of the
		// answers once it announces itself with a hello without reply.
		n.sawPeer(r, name, m.Reply == "", known)
		// Answer the newcomer directly so that it knows us at once.
		b := n.member(opBeat, r)
		if m.Reply != "" {
			n.respond(m, b)
		} else {
			n.publish(n.routeSubject(r), b)
		}
	case opBeat:
		r, known, name, err := parseMember(body)
		if err != nil {
			return err
		}
		n.sawPeer(r, name, true, known)
	case opBye:
		r, _, _, err := parseMember(body)
		if err != nil {
			return err
		}
		n.forgetPeer(r)
	case opCount:
		if len(body) < 4 {
			return errMalformed
		}
		if binary.BigEndian.Uint32(body) == n.route {
			return nil // our own query: the asker counts itself
		}
		count := n.localCount(string(body[4:]))
		b := make([]byte, 0, 4+binary.MaxVarintLen64)
		b = binary.BigEndian.AppendUint32(b, n.route)
		b = binary.AppendUvarint(b, uint64(count))
		n.respond(m, b)
	default:
		return errMalformed
	}
	return nil
}

// deliver hands data to c (nil when the id is not here).
func (n *Node) deliver(c Conn, data []byte) {
	if c == nil {
		n.notHere.Add(1)
		return
	}
	if err := c.SendBytes(data, false); err != nil {
		n.sendErrors.Add(1)
		return
	}
	n.delivered.Add(1)
}

// fanOut delivers data to the connections gathered in n.scratch, outside
// n.mu (a connection's callbacks may call the Node), then clears it.
func (n *Node) fanOut(data []byte) {
	if f := n.o.FanOut; f != nil && len(n.scratch) > 1 {
		sent := f(n.scratch, data)
		n.delivered.Add(uint64(sent))
		n.sendErrors.Add(uint64(len(n.scratch) - sent))
	} else {
		for _, c := range n.scratch {
			n.deliver(c, data)
		}
	}
	clear(n.scratch)
	n.scratch = n.scratch[:0]
}

func (n *Node) respond(m *nats.Msg, data []byte) {
	if m.Reply != "" {
		n.publish(m.Reply, data)
	}
}

func (n *Node) publish(subj string, data []byte) {
	if err := n.nc.Publish(subj, data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		n.log.Debug().Err(err).Str("subject", subj).Msg("publish failed")
	}
}

// localCount counts this Node's connections: all of them for an empty
// subject, else the members of that topic.
func (n *Node) localCount(subj string) int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if subj == "" {
		return len(n.conns)
	}
	if t := n.topics[subj]; t != nil {
		return len(t.conns)
	}
	return 0
}

// ConnectionOnline reports whether the connection with that id is open on
// its Node. It asks that Node (one round trip) unless it is this one; a
// Node that is gone answers false.
func (n *Node) ConnectionOnline(id uint64) (bool, error) {
	if n.closing.Load() {
		return false, ErrClosed
	}
	r := uint32(id >> 32)
	if r == n.route {
		n.mu.RLock()
		_, ok := n.conns[id]
		n.mu.RUnlock()
		return ok, nil
	}
	var b [9]byte
	b[0] = opOnline
	binary.BigEndian.PutUint64(b[1:], id)
	m, err := n.nc.Request(n.routeSubject(r), b[:], n.o.RequestTimeout)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("cluster: connection %d online: %w", id, err)
	}
	return len(m.Data) == 1 && m.Data[0] == 1, nil
}

// UserOnline reports whether a connection bound to uid is open on any
// Node. It answers at once when one is on this Node; else it asks every
// Node, as ConnectionCount does, and returns at the first yes.
func (n *Node) UserOnline(uid string) (bool, error) {
	tok, err := token(uid)
	if err != nil {
		return false, err
	}
	c, err := n.gather(n.subjUser+tok, true)
	if err != nil && c > 0 {
		err = nil
	}
	return c > 0, err
}

// GroupCount counts the connections in group over all Nodes (see
// ConnectionCount for how).
func (n *Node) GroupCount(group string) (int, error) {
	tok, err := token(group)
	if err != nil {
		return 0, err
	}
	return n.gather(n.subjGroup+tok, false)
}

// ConnectionCount counts the connections of all Nodes. It asks every other
// Node and waits until every Node it knows alive has answered, or until
// RequestTimeout: then it returns the count of those that did with
// ErrPartial. A Node that just started may be missed until its first
// announcement arrives (see Peers).
func (n *Node) ConnectionCount() (int, error) {
	return n.gather("", false)
}

// gather counts the connections of subj (all of them for "") on every Node.
// With first, it returns as soon as the count is not zero.
func (n *Node) gather(subj string, first bool) (int, error) {
	if n.closing.Load() {
		return 0, ErrClosed
	}
	total := n.localCount(subj)
	if first && total > 0 {
		return total, nil
	}
	n.peerMu.Lock()
	want := make(map[uint32]string, len(n.peers))
	for r, p := range n.peers {
		want[r] = p.name
	}
	n.peerMu.Unlock()
	if len(want) == 0 {
		return total, nil
	}
	inbox := n.nc.NewInbox()
	replies := make(chan *nats.Msg, 2*len(want)+16)
	sub, err := n.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return total, fmt.Errorf("cluster: count: %w", err)
	}
	defer sub.Unsubscribe()
	b := make([]byte, 0, 5+len(subj))
	b = append(b, opCount)
	b = binary.BigEndian.AppendUint32(b, n.route)
	b = append(b, subj...)
	if err := n.nc.PublishRequest(n.subjAll, inbox, b); err != nil {
		return total, fmt.Errorf("cluster: count: %w", err)
	}
	seen := make(map[uint32]bool, len(want))
	missing := len(want)
	t := time.NewTimer(n.o.RequestTimeout)
	defer t.Stop()
	for missing > 0 {
		select {
		case m := <-replies:
			r, c, err := parseCountReply(m.Data)
			if err != nil || r == n.route || seen[r] {
				continue
			}
			seen[r] = true
			total += c
			if first && total > 0 {
				return total, nil
			}
			if _, ok := want[r]; ok {
				missing--
			}
		case <-t.C:
			var names []string
			for r, name := range want {
				if !seen[r] {
					names = append(names, name)
				}
			}
			sort.Strings(names)
			return total, fmt.Errorf("%w within %s: %s", ErrPartial, n.o.RequestTimeout, strings.Join(names, ", "))
		}
	}
	return total, nil
}
