// Package cluster carries messages between the workers of goes, on one
// machine and across machines, over NATS (https://nats.io): to one
// connection id, to every connection of a user, to a group, to everyone,
// and answers presence questions (is this user online, how many
// connections in this group, in all).
//
// Two parts:
//
//   - Server embeds a nats-server in the master process. It listens on
//     loopback at a free port by default: the single-machine setup needs
//     nothing else installed. With ClusterOptions it forms a NATS cluster
//     (routes) with the embedded servers of other machines.
//   - Node runs in every worker. It connects to the Server's URL, or to an
//     existing NATS cluster's URL (then no Server is embedded at all), and
//     reconnects forever with backoff.
//
// # Routing
//
// A connection id carries its route in its high 32 bits
// (connections.Config.IDBase): a number that names the worker process
// holding the connection, new at every start of a worker (goes's master
// draws them from a counter with a random start, see master.Identity).
// Each Node subscribes to its route subject, "<prefix>.c.<route>", so
// SendToConnection needs no lookup: NATS routes by subject. A Node refuses
// to start (ErrRouteInUse) when another live Node answers for its route, so
// ids cannot be delivered to two Nodes.
//
// Users and groups are NATS subjects too ("<prefix>.u.<uid>",
// "<prefix>.g.<group>"): a Node subscribes while at least one of its
// connections is bound to the user or in the group, so a message travels
// only to the Nodes that have members. Broadcast and the Nodes' own
// announcements use "<prefix>.all". The prefix (default "goes") lets
// several applications share one NATS.
//
// # Delivery
//
// At most once, as NATS core: no acknowledgement, no retry, no
// persistence. See Node for when messages are lost. Messages are handed to
// Conn.SendBytes with raw false, so the listener's protocol encodes them.
//
// # Failures
//
// Given a NATS cluster, a Node whose server fails moves to another one
// (nats.go learns the cluster's servers from the one it connects to); its
// subscriptions follow. A server that dies closes its connections: the Node
// moves at once. One that hangs, or a link that drops everything, is given
// up when two pings (two per NodeOptions.Heartbeat) stay unanswered or a
// write takes longer than a Heartbeat. Meanwhile messages to the Node are
// lost, and so is what it wrote to a hung server; what it sends while it
// reconnects is buffered by nats.go (up to its reconnect buffer) and sent
// once it is back.
//
// # Presence
//
// ConnectionOnline is a NATS request to the connection's Node (NATS
// answers "no responders" at once when that Node is gone). UserOnline,
// GroupCount and ConnectionCount scatter a query to every Node and gather
// the answers: each Node announces itself when it starts, every
// NodeOptions.Heartbeat, and when it closes, so the asker knows how many
// answers to wait for; a Node that died silently is waited for (up to
// RequestTimeout, then ErrPartial with the count of the others) until it
// has missed three heartbeats. Beyond 16 Nodes each announces itself less
// often, in proportion to their number (NodeOptions.Heartbeat), so that
// the announcements a Node hears do not grow with the cluster: a silent
// Node is then forgotten after three of its longer periods. (A Node of an
// older version forgets such a Node after three Heartbeats, and learns of
// it again at its next announcement.)
package cluster
