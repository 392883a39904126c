// Package websocket implements the WebSocket protocol (RFC 6455) with the
// permessage-deflate extension (RFC 7692) on the goes protocol interface,
// so a listener can be "websocket://" and its OnMessage receives whole
// messages while Send sends them as frames.
//
// The opening handshake is parsed with the HTTP protocol's head parser and
// answered from Decode; every frame is one packet for the runtime. Data
// frames of a fragmented message are reassembled, pings are answered,
// close frames are answered and then the connection is closed. Protocol
// errors close the connection with the close code RFC 6455 asks for
// (1002, 1007, 1009, ...).
//
// A connection sends text frames unless SetBinary switches it to binary;
// Close starts the closing handshake with a code and a reason.
//
// The protocol tells the connection runtime's timeouts where a
// connection stands (Protocol.Phase): the opening handshake must arrive
// within the header timeout (30 s by default, answered 408), a frame or
// fragmented message that has begun must keep coming (the body timeout
// and minimum rate; close code 1008), and an open connection may stay
// silent as long as it likes (set Heartbeat or IdleTimeout for a limit).
//
// The same codec serves the client side of a connection (masking its
// frames and checking the server's 101 answer): a Client (NewClientFor)
// is the protocol of an outgoing connections.Client over tcp:// or
// tls://, which sends its opening handshake through the generic
// protocols.ClientHandshaker interface. goes.NewClient and
// Goer.NewAsyncConnection accept ws:// and wss:// URIs and do this for
// you. This package depends on the protocol interface only, never on the
// connection runtime.
package websocket

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// Errors returned by the codec. Input and Decode errors are wrapped in a
// *protocols.ReplyError carrying the close frame or HTTP answer for the peer.
var (
	// ErrProtocol: the peer broke RFC 6455 (close code 1002).
	ErrProtocol = errors.New("websocket: protocol error")
	// ErrInvalidUTF8: a text message or close reason is not UTF-8 (close code 1007).
	ErrInvalidUTF8 = errors.New("websocket: invalid utf-8")
	// ErrMessageTooBig: a message is over the size limit (close code 1009).
	ErrMessageTooBig = errors.New("websocket: message too big")
	// ErrHandshake: the opening handshake was refused or malformed.
	ErrHandshake = errors.New("websocket: bad handshake")
	// ErrNotOpen: Send or Close before the opening handshake finished.
	ErrNotOpen = errors.New("websocket: connection not open yet")
	// ErrClosing: Send after a close frame was sent.
	ErrClosing = errors.New("websocket: connection closing")
	// ErrCompression: a compressed message could not be inflated (close code 1007).
	ErrCompression = errors.New("websocket: bad compressed data")
)

// DefaultCloseTimeout is how long Close waits for the peer's close frame
// before closing the connection anyway.
const DefaultCloseTimeout = 5 * time.Second

// Protocol is the WebSocket codec. A Protocol is shared by all connections of
// a listener and safe for concurrent use; its fields must not change once it
// serves. The zero value is a server without compression, with no origin
// check and a message limit of the connection's MaxPackageSize.
type Protocol struct {
	// MaxMessageSize caps a message after reassembly and inflation, in
	// bytes; 0 means the connection's MaxPackageSize. A single frame is also
	// capped by MaxPackageSize, since the runtime buffers it whole.
	MaxMessageSize int

	// Subprotocols are the subprotocols the server speaks, most preferred
	// first. The first one the client also offers is selected; Subprotocol
	// tells which.
	Subprotocols []string

	// CheckOrigin, when set, is called with the Origin header (empty when
	// absent); returning false answers 403. It runs on the connection's
	// goroutine and must not block.
	CheckOrigin func(origin string, req *Request) bool

	// OnWebSocketConnect, when set, runs after the handshake request passed
	// every check and before the 101 answer. Returning 0 or 101 accepts the
	// connection; any other status (403, 401, 404, ...) refuses it with that
	// status. It runs on the connection's goroutine; req is valid only
	// during the call.
	OnWebSocketConnect func(c protocols.Conn, req *Request) (status int)

	// OnOpen, when set, runs once the 101 answer is queued: sends from it
	// reach the peer right after the handshake.
	//
	// OnOpen, OnPing, OnPong and OnClose run while the protocol decodes
	// the connection's input: on the connection's goroutine, as its
	// OnMessage does (the event loop, the callback pool or its reading
	// goroutine: see connections.Handler), never concurrently with another
	// callback of the same connection. They must not block: the loop's
	// other connections wait meanwhile.
	OnOpen func(c protocols.Conn)

	// OnPing runs for every ping received, after the pong was queued, on
	// the connection's goroutine; it must not block. payload is valid only
	// during the call.
	OnPing func(c protocols.Conn, payload []byte)

	// OnPong runs for every pong received, on the connection's goroutine;
	// it must not block. payload is valid only during the call.
	OnPong func(c protocols.Conn, payload []byte)

	// OnClose runs when the peer's close frame arrives, with its code
	// (CloseNoStatus when it had none) and reason, on the connection's
	// goroutine, before the connection's own OnClose; it must not block.
	OnClose func(c protocols.Conn, code int, reason string)

	// Compression configures permessage-deflate; the zero value disables it.
	Compression Compression

	// Limits bound the handshake request head, as for the HTTP protocol.
	http.Limits

	// OnError, when set, is told about input errors the codec answers with
	// a closing handshake instead of returning them to the runtime (a
	// message over the limit: close 1009, then the connection ends when the
	// peer answers or after CloseTimeout).
	OnError func(c protocols.Conn, err error)

	// CloseTimeout bounds the wait for the peer's close frame after Close
	// (default DefaultCloseTimeout).
	CloseTimeout time.Duration

	client bool // client side: mask frames, expect a 101 answer

	writers sync.Pool // *deflater, for connections without server context takeover
}

var (
	_ protocols.Protocol    = (*Protocol)(nil)
	_ protocols.GoingAwayer = (*Protocol)(nil)
	_ protocols.Phaser      = (*Protocol)(nil)
)

// NewWebsocketProtocol returns a server-side WebSocket protocol with the
// default settings (the zero Protocol), named as the seed names
// constructors (http.NewHttpProtocol). NewClient is the client side.
func NewWebsocketProtocol() *Protocol { return &Protocol{} }

// New is NewWebsocketProtocol under the short name most callers use.
func New() *Protocol { return NewWebsocketProtocol() }

// Name returns "websocket".
func (p *Protocol) Name() string { return "websocket" }

// Connection phases, as seen by the reading goroutine.
const (
	phaseHandshake = iota // waiting for the opening handshake
	phaseOpen             // frames flow
	phaseClosed           // close frame received or error sent: input is dropped
	phaseClosing          // we failed the connection with a close frame; waiting for the peer's
)

// Flags shared with other goroutines (Encode, Close, SetBinary).
const (
	flagOpen      = 1 << iota // handshake done, negotiated parameters final
	flagBinary                // Send sends binary frames
	flagCloseSent             // a close frame was queued
)

// connState is the per-connection state, stored with SetState once and
// allocated once. Fields without a comment are the reading goroutine's.
type connState struct {
	p     *Protocol
	flags atomic.Uint32

	// Set before flagOpen and read-only after it.
	client      bool
	subprotocol string
	dfl         deflateParams

	phase      uint8
	fragOp     Opcode // opcode of the message being reassembled, 0 when none
	fragZ      bool   // that message is compressed
	fragLen    int    // bytes of it received so far (compressed when fragZ)
	lastOp     Opcode // opcode of the last message delivered
	text       utf8Validator
	msg        []byte                      // reassembly buffer
	inflated   []byte                      // inflation output
	window     []byte                      // the peer's compression window (context takeover)
	hs         *clientHandshake            // client side: the opening handshake under way (nil on the server side)
	req        *http.Request               // server side: the handshake being parsed
	closeTimer atomic.Pointer[func() bool] // stops the close timer; set by Close, used by the peer's close
	// conn is the runtime's connection this state belongs to, set by Input
	// before flagOpen and read-only after it. The close timer closes it,
	// not the Conn given to Close: a wrapper such as a reconnecting
	// connections.Client outlives it, and a late timer must not close the
	// wrapper's next connection.
	conn    protocols.Conn
	skip    uint64 // phaseClosing: bytes of a refused frame still to drop
	skipped int    // phaseClosing: the packet Input just gave is dropped bytes
	held    int    // cap(msg) reported to the runtime's input budget (protocols.InputHolder)

	// Encode side, used with the connection's send lock held.
	enc *deflater // own compressor when context takeover is negotiated
}

// clientHandshake is what the client side keeps of its opening handshake,
// apart from connState so that a server's connections do not carry it.
type clientHandshake struct {
	acceptKey string   // the expected Sec-WebSocket-Accept
	offered   []string // the subprotocols offered
	opened    func()   // the runtime's, called by open
}

// ctrlBuf holds a pong or a close answer while it is built; WriteRaw
// copies it. They are lent from ctrlBufs: one in every connection's state
// took 139 bytes of each idle connection (connState from the 384-byte
// size class to 256; issue 21).
type ctrlBuf [maxControlPayload + maxFrameHeader]byte

var ctrlBufs = sync.Pool{New: func() any { return new(ctrlBuf) }}

// state returns c's state, creating it on first use. Only the connection's
// goroutine may create it.
func (p *Protocol) state(c protocols.Conn) *connState {
	if st, ok := c.State().(*connState); ok {
		return st
	}
	st := &connState{p: p, client: p.client}
	c.SetState(st)
	return st
}

func (p *Protocol) limit(c protocols.Conn) int {
	if p.MaxMessageSize > 0 {
		return p.MaxMessageSize
	}
	return c.MaxPackageSize()
}

// closeError returns the error for a failed connection: the close frame
// with code goes to the peer, err to the log.
func (st *connState) closeError(code int, err error) error {
	st.phase = phaseClosed
	if st.flags.Load()&flagCloseSent != 0 {
		return err
	}
	st.flags.Or(flagCloseSent)
	reply := appendClose(nil, code, closeReason(code), st.client, newMaskKey(st.client))
	return &protocols.ReplyError{Err: err, Reply: reply}
}

func closeReason(code int) string {
	switch code {
	case CloseProtocolError:
		return "protocol error"
	case CloseInvalidPayload:
		return "invalid payload"
	case CloseMessageTooBig:
		return "message too big"
	}
	return ""
}

func protocolError(format string, args ...any) error {
	return fmt.Errorf("websocket: %s: %w", fmt.Sprintf(format, args...), ErrProtocol)
}

// Input returns the length of the handshake head or of the next frame.
// Frame headers are checked as soon as they are complete, so an oversized
// or malformed frame fails before its payload is buffered.
func (p *Protocol) Input(c protocols.Conn, buf []byte) (int, error) {
	st := p.state(c)
	switch st.phase {
	case phaseHandshake:
		st.conn = c
		return p.inputHandshake(c, st, buf)
	case phaseClosed:
		return len(buf), nil
	case phaseClosing:
		if st.skip > 0 {
			n := min(st.skip, uint64(len(buf)))
			st.skip -= n // Decode skips these bytes without looking
			st.skipped = int(n)
			return int(n), nil
		}
	}
	h, ok := parseHeader(buf)
	if !ok {
		return 0, nil
	}
	if err := p.checkHeader(c, st, &h); err != nil {
		var re *protocols.ReplyError
		if errors.As(err, &re) {
			return 0, err
		}
		// Too big: tell the peer with a closing handshake rather than
		// dropping the connection under the rest of its message (which
		// would reset it before the close frame is read).
		// A frame far past any limit is not worth reading through.
		if st.phase != phaseOpen || h.length > 4*uint64(c.MaxPackageSize()) {
			return 0, st.closeError(CloseMessageTooBig, err)
		}
		p.failGracefully(c, st, CloseMessageTooBig, err)
		st.skip = uint64(h.size) + h.length
		return p.Input(c, buf)
	}
	total := uint64(h.size) + h.length
	if total > uint64(c.MaxPackageSize()) {
		err := fmt.Errorf("websocket: frame of %d bytes over limit %d: %w: %w",
			h.length, c.MaxPackageSize(), ErrMessageTooBig, protocols.ErrPackageTooLarge)
		if st.phase == phaseOpen && h.length <= 4*uint64(c.MaxPackageSize()) {
			p.failGracefully(c, st, CloseMessageTooBig, err)
			st.skip = total
			return p.Input(c, buf)
		}
		return 0, st.closeError(CloseMessageTooBig, err)
	}
	if uint64(len(buf)) < total {
		return 0, nil
	}
	return int(total), nil
}

// checkHeader applies the rules a frame header must follow. It does not
// change st: Input may see the same header more than once.
func (p *Protocol) checkHeader(c protocols.Conn, st *connState, h *header) error {
	if h.masked == st.client {
		if st.client {
			return st.closeError(CloseProtocolError, protocolError("masked frame from server"))
		}
		return st.closeError(CloseProtocolError, protocolError("unmasked frame from client"))
	}
	if !h.op.isKnown() {
		return st.closeError(CloseProtocolError, protocolError("reserved opcode %#x", byte(h.op)))
	}
	if h.length>>63 != 0 {
		return st.closeError(CloseProtocolError, protocolError("frame length with the most significant bit set"))
	}
	rsvOK := byte(0)
	if st.dfl.enabled && (h.op == OpText || h.op == OpBinary) {
		rsvOK = rsv1Bit // only the first frame of a message may say "compressed"
	}
	if h.rsv&^rsvOK != 0 {
		return st.closeError(CloseProtocolError, protocolError("reserved bits %#x without an extension", h.rsv))
	}
	if h.op.isControl() {
		if !h.fin {
			return st.closeError(CloseProtocolError, protocolError("fragmented control frame"))
		}
		if h.length > maxControlPayload {
			return st.closeError(CloseProtocolError, protocolError("control frame of %d bytes", h.length))
		}
		return nil
	}
	if h.op == OpContinuation {
		if st.fragOp == 0 {
			return st.closeError(CloseProtocolError, protocolError("continuation without a message"))
		}
	} else if st.fragOp != 0 {
		return st.closeError(CloseProtocolError, protocolError("new message inside a fragmented one"))
	}
	limit := uint64(p.limit(c))
	sofar := uint64(0)
	if h.op == OpContinuation {
		sofar = uint64(st.fragLen)
	}
	if h.length > limit || sofar+h.length > limit {
		// Input answers this one with a closing handshake.
		return fmt.Errorf("websocket: message over %d bytes: %w", limit, ErrMessageTooBig)
	}
	return nil
}

// Decode unmasks a frame and returns the message it completes, or ErrSkip
// for handshakes, control frames and non-final fragments. The message may
// alias packet or the connection's reassembly buffer and is valid until the
// next call.
func (p *Protocol) Decode(c protocols.Conn, packet []byte) ([]byte, error) {
	st := p.state(c)
	switch st.phase {
	case phaseHandshake:
		return nil, p.decodeHandshake(c, st, packet)
	case phaseClosed:
		return nil, protocols.ErrSkip
	case phaseClosing:
		if st.skipped > 0 {
			st.skipped = 0
			return nil, protocols.ErrSkip
		}
	}
	h, _ := parseHeader(packet)
	payload := packet[h.size:]
	if h.masked {
		maskBytes(h.mask, 0, payload)
	}
	if h.op.isControl() {
		return nil, p.control(c, st, h.op, payload)
	}
	if st.phase == phaseClosing {
		return nil, protocols.ErrSkip // data after our close frame is dropped
	}
	if h.op != OpContinuation {
		st.fragOp = h.op
		st.fragZ = h.rsv&rsv1Bit != 0
		st.fragLen = 0
		st.text.reset()
		if h.fin && !st.fragZ {
			// Whole, uncompressed message: deliver in place.
			st.fragOp = 0
			st.lastOp = h.op
			if h.op == OpText && !utf8.Valid(payload) {
				return nil, st.closeError(CloseInvalidPayload, fmt.Errorf("websocket: text message: %w", ErrInvalidUTF8))
			}
			return payload, nil
		}
		if h.fin {
			// Whole compressed message: inflate straight from the packet.
			st.fragOp = 0
			st.lastOp = h.op
			return p.finishCompressed(c, st, h.op, payload)
		}
		st.msg = st.msg[:0]
	}
	st.fragLen += len(payload)
	if st.fragOp == OpText && !st.fragZ {
		if !st.text.Write(payload) || h.fin && !st.text.Complete() {
			return nil, st.closeError(CloseInvalidPayload, fmt.Errorf("websocket: text message: %w", ErrInvalidUTF8))
		}
	}
	st.msg = append(st.msg, payload...)
	if !h.fin {
		// The fragments so far are unfinished input: they count against
		// the worker's budget, as a partial frame in the runtime's buffer
		// does.
		if err := st.hold(c, cap(st.msg)); err != nil {
			st.phase = phaseClosed
			return nil, err
		}
		return nil, protocols.ErrSkip
	}
	if err := st.hold(c, 0); err != nil {
		return nil, err
	}
	op := st.fragOp
	st.fragOp = 0
	st.lastOp = op
	if st.fragZ {
		return p.finishCompressed(c, st, op, st.msg)
	}
	msg := st.msg
	st.trim()
	return msg, nil
}

// finishCompressed inflates a complete compressed message and checks it.
func (p *Protocol) finishCompressed(c protocols.Conn, st *connState, op Opcode, z []byte) ([]byte, error) {
	out, err := p.inflate(st, z, p.limit(c))
	if err != nil {
		if errors.Is(err, ErrMessageTooBig) {
			return nil, st.closeError(CloseMessageTooBig, err)
		}
		return nil, st.closeError(CloseInvalidPayload, err)
	}
	if op == OpText && !utf8.Valid(out) {
		return nil, st.closeError(CloseInvalidPayload, fmt.Errorf("websocket: compressed text message: %w", ErrInvalidUTF8))
	}
	st.trim()
	return out, nil
}

// trim drops reassembly buffers that grew large, so an idle connection
// does not keep the memory of its largest message. The message being
// returned stays valid: only the field is reset.
func (st *connState) trim() {
	const keep = 64 << 10
	if cap(st.msg) > keep {
		st.msg = nil
	}
	if cap(st.inflated) > keep {
		st.inflated = nil
	}
}

// control handles a ping, pong or close frame.
func (p *Protocol) control(c protocols.Conn, st *connState, op Opcode, payload []byte) error {
	switch op {
	case OpPing:
		if st.flags.Load()&flagCloseSent == 0 {
			buf := ctrlBufs.Get().(*ctrlBuf)
			err := c.WriteRaw(appendFrame(buf[:0], true, 0, OpPong, payload, st.client, newMaskKey(st.client)))
			ctrlBufs.Put(buf)
			if err != nil {
				return fmt.Errorf("websocket: queue pong: %w", err)
			}
		}
		if p.OnPing != nil {
			p.OnPing(c, payload)
		}
	case OpPong:
		if p.OnPong != nil {
			p.OnPong(c, payload)
		}
	case OpClose:
		code, reason := CloseNoStatus, ""
		switch {
		case len(payload) == 1:
			return st.closeError(CloseProtocolError, protocolError("close frame with a 1-byte body"))
		case len(payload) >= closeCodeLen:
			code = int(payload[0])<<8 | int(payload[1])
			if !validCloseCode(code) {
				return st.closeError(CloseProtocolError, protocolError("invalid close code %d", code))
			}
			if !utf8.Valid(payload[closeCodeLen:]) {
				return st.closeError(CloseInvalidPayload, fmt.Errorf("websocket: close reason: %w", ErrInvalidUTF8))
			}
			reason = string(payload[closeCodeLen:])
		}
		st.phase = phaseClosed
		if stop := st.closeTimer.Load(); stop != nil {
			(*stop)()
		}
		if st.flags.Or(flagCloseSent)&flagCloseSent == 0 {
			// Answer with the peer's code, as RFC 6455 section 5.5.1 suggests.
			echo := code
			if code == CloseNoStatus {
				echo = 0
			}
			buf := ctrlBufs.Get().(*ctrlBuf)
			c.WriteRaw(appendClose(buf[:0], echo, "", st.client, newMaskKey(st.client)))
			ctrlBufs.Put(buf)
		}
		c.CloseAfterFlush()
		if p.OnClose != nil {
			p.OnClose(c, code, reason)
		}
	}
	return protocols.ErrSkip
}

// Encode appends msg as one frame: text, or binary after SetBinary, and
// compressed when permessage-deflate was negotiated and msg is at least
// Compression.Threshold bytes. Text must be valid UTF-8.
func (p *Protocol) Encode(c protocols.Conn, dst, msg []byte) ([]byte, error) {
	st, _ := c.State().(*connState)
	if st == nil {
		return dst, ErrNotOpen
	}
	f := st.flags.Load()
	switch {
	case f&flagCloseSent != 0:
		return dst, ErrClosing
	case f&flagOpen == 0:
		return dst, ErrNotOpen
	}
	op := OpText
	if f&flagBinary != 0 {
		op = OpBinary
	} else if !utf8.Valid(msg) {
		return dst, fmt.Errorf("websocket: send text: %w", ErrInvalidUTF8)
	}
	if st.dfl.enabled && len(msg) >= p.Compression.threshold() {
		return p.appendCompressed(st, dst, op, msg)
	}
	return appendFrame(dst, true, 0, op, msg, st.client, newMaskKey(st.client)), nil
}

// EncodeKey implements protocols.SharedEncoder. A server connection's
// frame carries no mask, so every open connection encodes a message alike
// but for its opcode (SetBinary) and, for a message long enough to be
// compressed, its compression: without context takeover (the default) it
// depends on the level only, which a peer's window limit changes to
// Huffman coding. A connection that keeps a compression context, a
// client's, one that is not open or is closing has no key.
func (p *Protocol) EncodeKey(c protocols.Conn, msg []byte) (uint32, bool) {
	st, _ := c.State().(*connState)
	if st == nil || st.client {
		return 0, false
	}
	f := st.flags.Load()
	if f&(flagCloseSent|flagOpen) != flagOpen {
		return 0, false
	}
	var key uint32
	if f&flagBinary != 0 {
		key = 1
	}
	if st.dfl.enabled && len(msg) >= p.Compression.threshold() {
		if !st.dfl.ownNoCtx {
			return 0, false
		}
		key |= 2
		if st.dfl.ownBits < 15 {
			key |= 4
		}
	}
	return key, true
}

// SetBinary chooses whether Send on c sends binary (true) or text (false,
// the default) frames. Call it from the connection's callbacks (OnConnect,
// OnOpen, OnMessage); once the connection is open it is safe from any
// goroutine.
func SetBinary(c protocols.Conn, binary bool) {
	st, ok := c.State().(*connState)
	if !ok {
		p, _ := connProtocol(c)
		if p == nil {
			return
		}
		st = p.state(c)
	}
	if binary {
		st.flags.Or(flagBinary)
	} else {
		st.flags.And(^uint32(flagBinary))
	}
}

// connProtocol finds the WebSocket protocol of a connection that has no
// state yet.
func connProtocol(c protocols.Conn) (*Protocol, bool) {
	pc, ok := c.(interface{ Protocol() protocols.Protocol })
	if !ok {
		return nil, false
	}
	switch p := pc.Protocol().(type) {
	case *Protocol:
		return p, true
	case *Client:
		return p.Protocol, p.Protocol != nil
	}
	return nil, false
}

// GoingAway starts the closing handshake with code 1001 (going away): the
// runtime calls it for the connections a draining worker still has when
// its stop timeout passes (protocols.GoingAwayer). Like Close, it does
// nothing on a connection that is not open or already closing; safe from
// any goroutine.
func (p *Protocol) GoingAway(c protocols.Conn) {
	Close(c, CloseGoingAway, "server going away")
}

// MessageType returns OpText or OpBinary: the type of the message being
// delivered to OnMessage (0 before the first message). Call it only from
// the connection's callbacks.
func MessageType(c protocols.Conn) Opcode {
	if st, ok := c.State().(*connState); ok {
		return st.lastOp
	}
	return 0
}

// Subprotocol returns the subprotocol selected in the handshake, or "".
// Safe from any goroutine once the connection is open.
func Subprotocol(c protocols.Conn) string {
	if st, ok := c.State().(*connState); ok && st.flags.Load()&flagOpen != 0 {
		return st.subprotocol
	}
	return ""
}

// Compressed reports whether permessage-deflate was negotiated on c.
// Safe from any goroutine once the connection is open.
func Compressed(c protocols.Conn) bool {
	if st, ok := c.State().(*connState); ok && st.flags.Load()&flagOpen != 0 {
		return st.dfl.enabled
	}
	return false
}

// Close starts the closing handshake: it queues a close frame with code
// (1000 when 0) and reason (cut to 123 bytes), and the connection is closed
// when the peer's close frame arrives or after CloseTimeout; the timeout
// closes only the connection that was open when Close was called, never a
// later one of a reconnecting connections.Client. Sends after it fail with
// ErrClosing. Calling it again does nothing. Once the connection is
// open it is safe from any goroutine.
func Close(c protocols.Conn, code int, reason string) error {
	st, ok := c.State().(*connState)
	if !ok || st.flags.Load()&flagOpen == 0 {
		return ErrNotOpen
	}
	if code == 0 {
		code = CloseNormal
	}
	if st.flags.Or(flagCloseSent)&flagCloseSent != 0 {
		return nil
	}
	if err := c.WriteRaw(appendClose(nil, code, reason, st.client, newMaskKey(st.client))); err != nil {
		return fmt.Errorf("websocket: queue close frame: %w", err)
	}
	st.startCloseTimer(c)
	return nil
}

// startCloseTimer closes the connection of st after CloseTimeout unless
// the peer's close frame comes first, on the connection's clock when it
// has one (AfterFunc: the worker's timer wheel), else on a runtime timer. It closes st.conn, the connection
// whose handshake created st, rather than c, which may be a wrapper
// (connections.Client) that has moved on to another connection by then;
// closing a connection that has already ended does nothing.
func (st *connState) startCloseTimer(c protocols.Conn) {
	if st.conn != nil {
		c = st.conn
	}
	cl, ok := c.(interface{ Close() error })
	if !ok {
		return
	}
	d := st.p.CloseTimeout
	if d <= 0 {
		d = DefaultCloseTimeout
	}
	fire := func() { cl.Close() }
	var stop func() bool
	if a, ok := c.(afterFuncer); ok {
		stop = a.AfterFunc(d, fire) // the worker's timer wheel
	} else {
		stop = time.AfterFunc(d, fire).Stop
	}
	st.closeTimer.Store(&stop)
}

// afterFuncer is a connection that runs timeouts on its own clock: those
// of the connections package, on the worker's timer wheel (this package
// cannot import connections).
type afterFuncer interface {
	AfterFunc(d time.Duration, fn func()) (stop func() bool)
}

// Phase tells the runtime's read timeouts where c stands
// (protocols.Phaser): PhaseHead until the opening handshake has been
// received (HeaderTimeout, from the accept), then PhaseBody while a frame
// is partly received or a fragmented message is unfinished (BodyTimeout
// and BodyMinRate: a half-sent frame cannot be held forever), and
// PhaseOpen otherwise: an open WebSocket may stay silent as long as it
// likes (Heartbeat and IdleTimeout are there for those who want a
// limit). A closing connection is PhaseOpen: CloseTimeout bounds it.
func (p *Protocol) Phase(c protocols.Conn, partial bool) protocols.Phase {
	st, ok := c.State().(*connState)
	if !ok {
		return protocols.PhaseHead
	}
	switch st.phase {
	case phaseHandshake:
		return protocols.PhaseHead
	case phaseOpen:
		if partial || st.fragOp != 0 {
			return protocols.PhaseBody
		}
	}
	return protocols.PhaseOpen
}

// timeoutReply answers an opening handshake that did not arrive in time.
var timeoutReply = (&http.Error{Status: 408, Reason: "the websocket handshake did not arrive in time"}).Reply()

// TimedOut is what the runtime sends before it closes a connection whose
// phase ran out of time (protocols.Phaser): 408 Request Timeout for an
// opening handshake, close code 1008 (policy violation) for a frame or
// message that stopped coming; a client's connection closes silently.
func (p *Protocol) TimedOut(c protocols.Conn, ph protocols.Phase) []byte {
	st, ok := c.State().(*connState)
	if ok && st.client {
		return nil
	}
	if !ok || st.phase == phaseHandshake {
		return timeoutReply
	}
	if st.phase != phaseOpen || st.flags.Or(flagCloseSent)&flagCloseSent != 0 {
		return nil
	}
	st.phase = phaseClosed
	return appendClose(nil, ClosePolicyViolation, "timeout", st.client, newMaskKey(st.client))
}

// failGracefully fails the connection with a closing handshake: the close
// frame goes out, input is dropped until the peer's close frame, which
// ends the connection (or CloseTimeout does).
func (p *Protocol) failGracefully(c protocols.Conn, st *connState, code int, err error) {
	st.phase = phaseClosing
	if p.OnError != nil {
		p.OnError(c, err)
	}
	if st.flags.Or(flagCloseSent)&flagCloseSent != 0 {
		return
	}
	c.WriteRaw(appendClose(nil, code, closeReason(code), st.client, newMaskKey(st.client)))
	st.startCloseTimer(c)
}

// hold reports to the runtime the memory of the message being reassembled
// (protocols.InputHolder), when it changed.
func (st *connState) hold(c protocols.Conn, n int) error {
	if n == st.held {
		return nil
	}
	h, ok := c.(protocols.InputHolder)
	if !ok {
		return nil
	}
	st.held = n
	return h.HoldInput(n)
}

// PacketSize implements protocols.PacketSizer: the length of the frame at
// the start of buf once its header is in, so that the runtime buffers it
// in exactly that much memory; 0 during the handshake or before the
// header is complete.
func (p *Protocol) PacketSize(c protocols.Conn, buf []byte) int {
	st, ok := c.State().(*connState)
	if !ok || st.phase != phaseOpen {
		return 0
	}
	h, ok := parseHeader(buf)
	if !ok {
		return 0
	}
	total := uint64(h.size) + h.length
	if total > uint64(c.MaxPackageSize()) {
		return 0
	}
	return int(total)
}

// OverloadReply implements protocols.OverloadReplier: a connection the
// worker sheds because its budget for unfinished input is spent gets a
// close frame with code 1013 (try again later), or a 503 answer while its
// handshake is still being read. Nothing when a close frame was sent
// already. Safe for concurrent use with c's callbacks.
func (p *Protocol) OverloadReply(c protocols.Conn) []byte {
	st, ok := c.State().(*connState)
	if !ok {
		return nil
	}
	f := st.flags.Load()
	if f&flagOpen == 0 {
		if st.client {
			return nil
		}
		return overloadHTTP
	}
	if st.flags.Or(flagCloseSent)&flagCloseSent != 0 {
		return nil
	}
	return appendClose(nil, CloseTryAgainLater, "try again later", st.client, newMaskKey(st.client))
}

var overloadHTTP = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 37\r\n" +
	"Retry-After: 5\r\n" +
	"Connection: close\r\n" +
	"\r\n" +
	"503 Service Unavailable: server busy\n")

var (
	_ protocols.PacketSizer     = (*Protocol)(nil)
	_ protocols.OverloadReplier = (*Protocol)(nil)
)
