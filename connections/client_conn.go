package connections

import (
	"net"
	"time"

	"github.com/goes-project/goes/protocols"
)

// The Connection methods of a Client: they speak for its current
// connection, or for the Client while it has none.

// ID is the Client's id, the same across reconnections: the IDBase bits,
// bit 31 set and a sequence. Safe for concurrent use.
func (cl *Client) ID() uint64 { return cl.id }

// LocalAddr is the connection's local address, or an empty address of the
// URI's network while there is no connection. Safe for concurrent use.
func (cl *Client) LocalAddr() net.Addr {
	if in := cl.conn(); in != nil {
		return in.LocalAddr()
	}
	switch cl.t.network {
	case "unix":
		return &net.UnixAddr{Net: "unix"}
	case "udp":
		return &net.UDPAddr{}
	}
	return &net.TCPAddr{}
}

// RemoteAddr is the peer's address, or the URI's while there is no
// connection. Safe for concurrent use.
func (cl *Client) RemoteAddr() net.Addr {
	if in := cl.conn(); in != nil {
		return in.RemoteAddr()
	}
	return clientAddr{network: cl.t.network, addr: cl.t.addr}
}

// Transport is "tcp", "tls", "unix" or "udp". Safe for concurrent use.
func (cl *Client) Transport() string { return cl.cfg.Transport }

// Protocol is the Client's protocol, nil for raw bytes. Safe for concurrent use.
func (cl *Client) Protocol() protocols.Protocol { return cl.cfg.Protocol }

// PauseRecv stops reading, also from connections made later. Safe for
// concurrent use.
func (cl *Client) PauseRecv() {
	cl.mu.Lock()
	cl.paused = true
	if cl.cur != nil {
		cl.cur.PauseRecv()
	}
	cl.mu.Unlock()
}

// ResumeRecv undoes PauseRecv. Safe for concurrent use.
func (cl *Client) ResumeRecv() {
	cl.mu.Lock()
	cl.paused = false
	if cl.cur != nil {
		cl.cur.ResumeRecv()
	}
	cl.mu.Unlock()
}

// BytesRead counts the bytes received over all connections. Safe for concurrent use.
func (cl *Client) BytesRead() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := cl.bytesIn
	if cl.cur != nil {
		n += cl.cur.BytesRead()
	}
	return n
}

// BytesWritten counts the bytes written over all connections. Safe for concurrent use.
func (cl *Client) BytesWritten() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := cl.bytesOut
	if cl.cur != nil {
		n += cl.cur.BytesWritten()
	}
	return n
}

// SendBufferLen counts the bytes queued on the Client and on its
// connection. Safe for concurrent use.
func (cl *Client) SendBufferLen() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := len(cl.pbuf)
	if cl.cur != nil {
		n += cl.cur.SendBufferLen()
	}
	return n
}

// CreatedAt is when NewClient made the Client. Safe for concurrent use.
func (cl *Client) CreatedAt() time.Time { return cl.born }

// Context returns the value stored with SetContext; it survives
// reconnections. Safe for concurrent use.
func (cl *Client) Context() any {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.userCtx
}

// SetContext stores a user value with the Client. Safe for concurrent use.
func (cl *Client) SetContext(v any) {
	cl.mu.Lock()
	cl.userCtx = v
	cl.mu.Unlock()
}

// State is the protocol state of the current connection (nil without
// one). Only the Client's callbacks may call it.
func (cl *Client) State() any {
	if in := cl.conn(); in != nil {
		return in.State()
	}
	return nil
}

// SetState stores protocol state with the current connection; without one
// it does nothing. Only the Client's callbacks may call it.
func (cl *Client) SetState(v any) {
	if in := cl.conn(); in != nil {
		in.SetState(v)
	}
}

// MaxPackageSize is the largest packet accepted. Safe for concurrent use.
func (cl *Client) MaxPackageSize() int { return cl.cfg.MaxPackageSize }

// CloseAfterFlush closes once what is queued is written. Safe for
// concurrent use.
func (cl *Client) CloseAfterFlush() {
	if in := cl.conn(); in != nil {
		in.CloseAfterFlush()
		return
	}
	cl.Close()
}

// Draining is always false: a Client is not drained with a worker's
// listener. Safe for concurrent use.
func (cl *Client) Draining() bool { return false }

func (cl *Client) conn() clientConn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.cur
}

// gone reports whether the Client is closed or closing.
func (cl *Client) gone() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.st == clientClosed || cl.closeReq || cl.destroy || cl.cur != nil && cl.cur.Gone()
}
