package goes

import (
	"errors"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/connections"
)

// ErrClusterDisabled is returned by a Goer's cluster methods when its
// worker has no cluster Node: the config has no cluster section turned on
// and Goer.Cluster is false, or the call is made outside a worker (in the
// master, or before OnWorkerStart).
var ErrClusterDisabled = errors.New("goes: cluster disabled (set \"cluster\": {\"enabled\": true} in the config, or Goer.Cluster)")

// The cluster methods below send through the worker's cluster Node, in the
// style of GatewayWorker's Gateway::sendToUid and friends: any worker, of
// any listener, on any machine sharing the NATS, reaches the connection,
// user or group wherever it is. Data is encoded by the receiving
// connection's protocol (like Connection.SendBytes with raw false).
// Delivery is at most once (see cluster.Node). Each is safe for concurrent
// use, from any callback or goroutine of the worker.

// Node is the worker's cluster Node, nil without a cluster (see
// ErrClusterDisabled); for what the methods below do not cover (Flush,
// Peers, Stats).
func (g *Goer) Node() *cluster.Node { return g.node }

// SendToConnection sends data to the connection with that id (Connection.ID,
// from any worker).
func (g *Goer) SendToConnection(id uint64, data []byte) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.SendToConnection(id, data)
}

// CloseConnection closes the connection with that id once what was queued
// for it is written.
func (g *Goer) CloseConnection(id uint64) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.CloseConnection(id)
}

// SendToUser sends data to every connection bound to uid (BindUser).
func (g *Goer) SendToUser(uid string, data []byte) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.SendToUser(uid, data)
}

// SendToGroup sends data to every connection in group (JoinGroup) but
// those whose ids are in exclude.
func (g *Goer) SendToGroup(group string, data []byte, exclude ...uint64) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.SendToGroup(group, data, exclude...)
}

// Broadcast sends data to every connection of every worker in the cluster
// but those whose ids are in exclude.
func (g *Goer) Broadcast(data []byte, exclude ...uint64) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.Broadcast(data, exclude...)
}

// BindUser binds c, a connection of this worker, to user uid; a connection
// has one user, a user any number of connections. The binding ends when c
// closes.
func (g *Goer) BindUser(c connections.Connection, uid string) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.BindUser(c, uid)
}

// UnbindUser undoes BindUser.
func (g *Goer) UnbindUser(c connections.Connection) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.UnbindUser(c)
}

// JoinGroup adds c, a connection of this worker, to group, until it leaves
// or closes.
func (g *Goer) JoinGroup(c connections.Connection, group string) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.JoinGroup(c, group)
}

// LeaveGroup removes c from group.
func (g *Goer) LeaveGroup(c connections.Connection, group string) error {
	if g.node == nil {
		return ErrClusterDisabled
	}
	return g.node.LeaveGroup(c, group)
}

// UserOnline reports whether a connection bound to uid is open anywhere.
func (g *Goer) UserOnline(uid string) (bool, error) {
	if g.node == nil {
		return false, ErrClusterDisabled
	}
	return g.node.UserOnline(uid)
}

// ConnectionOnline reports whether the connection with that id is open.
func (g *Goer) ConnectionOnline(id uint64) (bool, error) {
	if g.node == nil {
		return false, ErrClusterDisabled
	}
	return g.node.ConnectionOnline(id)
}

// GroupCount counts the connections in group over the cluster
// (cluster.ErrPartial with a lower bound when a worker did not answer).
func (g *Goer) GroupCount(group string) (int, error) {
	if g.node == nil {
		return 0, ErrClusterDisabled
	}
	return g.node.GroupCount(group)
}

// ConnectionCount counts the connections of every worker in the cluster
// (cluster.ErrPartial with a lower bound when a worker did not answer).
func (g *Goer) ConnectionCount() (int, error) {
	if g.node == nil {
		return 0, ErrClusterDisabled
	}
	return g.node.ConnectionCount()
}
