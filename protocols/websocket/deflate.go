package websocket

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Compression configures permessage-deflate (RFC 7692). The zero value
// disables it.
type Compression struct {
	// Enabled accepts the permessage-deflate offers of clients (and makes
	// a client offer it).
	Enabled bool

	// Level is the compress/flate level for sent messages, 1..9; 0 means
	// flate.BestSpeed. When the peer limits our window below 32 KiB,
	// messages are Huffman-coded only, which needs no window.
	Level int

	// Threshold: messages shorter than this many bytes are sent
	// uncompressed; 0 means DefaultCompressionThreshold, negative
	// compresses every message.
	Threshold int

	// ContextTakeover keeps our compressor's history across messages, for
	// better ratios at the cost of a compressor per connection (hundreds of
	// KiB each). By default we answer server_no_context_takeover (client:
	// offer client_no_context_takeover) and share compressors from a pool.
	ContextTakeover bool

	// PeerNoContextTakeover asks the peer to compress every message on its
	// own, so no 32 KiB window needs to be kept per connection to inflate.
	PeerNoContextTakeover bool
}

// DefaultCompressionThreshold is the size below which messages are sent
// uncompressed when Compression.Threshold is 0.
const DefaultCompressionThreshold = 128

func (cm Compression) threshold() int {
	switch {
	case cm.Threshold < 0:
		return 0
	case cm.Threshold == 0:
		return DefaultCompressionThreshold
	}
	return cm.Threshold
}

func (cm Compression) level() int {
	if cm.Level <= 0 || cm.Level > flate.BestCompression {
		return flate.BestSpeed
	}
	return cm.Level
}

// deflateParams are the negotiated parameters, seen from our side.
type deflateParams struct {
	enabled   bool
	ownNoCtx  bool  // we reset our compressor for every message
	peerNoCtx bool  // the peer does, so we keep no window to inflate
	ownBits   uint8 // largest window our compressor may use (8..15)
	peerBits  uint8 // largest window the peer's compressor uses
}

const extensionName = "permessage-deflate"

// negotiate picks the first acceptable permessage-deflate offer in the
// Sec-WebSocket-Extensions values and returns the parameters and the
// response header value. Offers with unknown, repeated or malformed
// parameters are declined, as RFC 7692 section 5 asks.
func (cm Compression) negotiate(offers []string) (deflateParams, string) {
	for _, line := range offers {
		for offer := range strings.SplitSeq(line, ",") {
			if d, resp, ok := cm.accept(offer); ok {
				return d, resp
			}
		}
	}
	return deflateParams{}, ""
}

func (cm Compression) accept(offer string) (deflateParams, string, bool) {
	parts := strings.Split(offer, ";")
	if strings.TrimSpace(parts[0]) != extensionName {
		return deflateParams{}, "", false
	}
	d := deflateParams{enabled: true, ownBits: 15, peerBits: 15}
	var seen [4]bool
	clientBitsOffered, clientBits := false, 0
	serverBits := 0
	for _, param := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(param), "=")
		name = strings.TrimSpace(name)
		value = strings.Trim(strings.TrimSpace(value), `"`)
		idx := -1
		switch name {
		case "server_no_context_takeover":
			idx = 0
			if hasValue {
				return d, "", false
			}
			d.ownNoCtx = true
		case "client_no_context_takeover":
			idx = 1
			if hasValue {
				return d, "", false
			}
			d.peerNoCtx = true
		case "server_max_window_bits":
			idx = 2
			n, ok := windowBits(value)
			if !hasValue || !ok {
				return d, "", false
			}
			serverBits = n
		case "client_max_window_bits":
			idx = 3
			clientBitsOffered = true
			if hasValue {
				n, ok := windowBits(value)
				if !ok {
					return d, "", false
				}
				clientBits = n
			}
		default:
			return d, "", false
		}
		if seen[idx] {
			return d, "", false
		}
		seen[idx] = true
	}
	var resp strings.Builder
	resp.WriteString(extensionName)
	if !cm.ContextTakeover {
		d.ownNoCtx = true
	}
	if d.ownNoCtx {
		resp.WriteString("; server_no_context_takeover")
	}
	if cm.PeerNoContextTakeover {
		d.peerNoCtx = true
	}
	if d.peerNoCtx {
		resp.WriteString("; client_no_context_takeover")
	}
	if serverBits != 0 {
		d.ownBits = uint8(serverBits)
		resp.WriteString("; server_max_window_bits=" + strconv.Itoa(serverBits))
	}
	if clientBitsOffered && clientBits != 0 {
		d.peerBits = uint8(clientBits)
		resp.WriteString("; client_max_window_bits=" + strconv.Itoa(clientBits))
	}
	return d, resp.String(), true
}

func windowBits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 2 || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 8 || n > 15 {
		return 0, false
	}
	return n, true
}

// clientOffer is the Sec-WebSocket-Extensions value a client sends.
func (cm Compression) clientOffer() string {
	s := extensionName + "; client_max_window_bits"
	if !cm.ContextTakeover {
		s += "; client_no_context_takeover"
	}
	if cm.PeerNoContextTakeover {
		s += "; server_no_context_takeover"
	}
	return s
}

// parseServerResponse checks the server's answer to our offer (client
// side) and returns the parameters seen from the client.
func (cm Compression) parseServerResponse(values []string) (deflateParams, error) {
	var exts []string
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(e) != "" {
				exts = append(exts, e)
			}
		}
	}
	if len(exts) == 0 {
		return deflateParams{}, nil
	}
	if len(exts) > 1 || !cm.Enabled {
		return deflateParams{}, fmt.Errorf("%w: unexpected extensions %q", ErrHandshake, strings.Join(values, ", "))
	}
	parts := strings.Split(exts[0], ";")
	if strings.TrimSpace(parts[0]) != extensionName {
		return deflateParams{}, fmt.Errorf("%w: unexpected extension %q", ErrHandshake, parts[0])
	}
	d := deflateParams{enabled: true, ownBits: 15, peerBits: 15}
	for _, param := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(param), "=")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch strings.TrimSpace(name) {
		case "server_no_context_takeover":
			d.peerNoCtx = true
		case "client_no_context_takeover":
			d.ownNoCtx = true
		case "server_max_window_bits":
			n, ok := windowBits(value)
			if !hasValue || !ok {
				return deflateParams{}, fmt.Errorf("%w: bad server_max_window_bits %q", ErrHandshake, value)
			}
			d.peerBits = uint8(n)
		case "client_max_window_bits":
			n, ok := windowBits(value)
			if !hasValue || !ok {
				return deflateParams{}, fmt.Errorf("%w: bad client_max_window_bits %q", ErrHandshake, value)
			}
			d.ownBits = uint8(n)
		default:
			return deflateParams{}, fmt.Errorf("%w: unknown permessage-deflate parameter %q", ErrHandshake, name)
		}
	}
	if !cm.ContextTakeover {
		d.ownNoCtx = true
	}
	return d, nil
}

// deflateTail ends every compressed message on the wire before it is cut
// off (RFC 7692, section 7.2.1); finalBlock is an empty final stored block
// we add after it so that the inflater ends with io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflateSource feeds a message's compressed bytes and then deflateTail to
// the inflater. It is an io.ByteReader so flate does not wrap it in a bufio.Reader.
type inflateSource struct {
	b    []byte
	tail int
}

func (s *inflateSource) Read(p []byte) (int, error) {
	if len(s.b) > 0 {
		n := copy(p, s.b)
		s.b = s.b[n:]
		return n, nil
	}
	if s.tail < len(deflateTail) {
		n := copy(p, deflateTail[s.tail:])
		s.tail += n
		return n, nil
	}
	return 0, io.EOF
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.b) > 0 {
		c := s.b[0]
		s.b = s.b[1:]
		return c, nil
	}
	if s.tail < len(deflateTail) {
		c := deflateTail[s.tail]
		s.tail++
		return c, nil
	}
	return 0, io.EOF
}

// inflater is a pooled decompressor: it keeps no state between messages
// (context takeover is done with the connection's window as dictionary).
type inflater struct {
	src inflateSource
	fr  io.ReadCloser
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.fr = flate.NewReader(&f.src)
	return f
}}

// inflate decompresses one message into st.inflated, failing with
// ErrMessageTooBig as soon as the output passes limit, so a small
// compressed message cannot expand into unbounded memory.
func (p *Protocol) inflate(st *connState, in []byte, limit int) ([]byte, error) {
	out, err := inflateBounded(st.inflated[:0], in, st.window, limit)
	if out != nil {
		st.inflated = out[:0]
	}
	if err != nil {
		return nil, err
	}
	if !st.dfl.peerNoCtx {
		st.window = appendWindow(st.window, out, 1<<st.dfl.peerBits)
	}
	return out, nil
}

// inflateBounded appends the inflation of in (a permessage-deflate payload
// without its tail) to dst, with dict as the preceding window.
func inflateBounded(dst, in, dict []byte, limit int) ([]byte, error) {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.src = inflateSource{b: in}
	if err := f.fr.(flate.Resetter).Reset(&f.src, dict); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrCompression, err)
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) || len(dst)-start > limit {
			if len(dst)-start > limit {
				return dst, fmt.Errorf("websocket: inflated message over %d bytes: %w", limit, ErrMessageTooBig)
			}
			grow := max(cap(dst), 4<<10)
			if room := limit + 1 - (len(dst) - start); grow > room {
				grow = room
			}
			dst = slices.Grow(dst, grow)
		}
		end := min(cap(dst), start+limit+1) // never read more than one byte past the limit
		n, err := f.fr.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, fmt.Errorf("websocket: inflated message over %d bytes: %w", limit, ErrMessageTooBig)
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("%w: %w", ErrCompression, err)
		}
	}
}

// appendWindow appends b to the window w, keeping its last size bytes.
func appendWindow(w, b []byte, size int) []byte {
	if len(b) >= size {
		if cap(w) < size {
			w = make([]byte, 0, size)
		}
		return append(w[:0], b[len(b)-size:]...)
	}
	if cap(w) < size {
		nw := make([]byte, len(w), size)
		copy(nw, w)
		w = nw
	}
	if over := len(w) + len(b) - size; over > 0 {
		w = w[:copy(w, w[over:])]
	}
	return append(w, b...)
}

// deflater compresses messages into buf.
type deflater struct {
	fw    *flate.Writer
	buf   []byte
	level int
}

func (d *deflater) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	return len(p), nil
}

func newDeflater(level int) *deflater {
	d := &deflater{level: level}
	fw, err := flate.NewWriter(d, level)
	if err != nil {
		panic(err) // level is checked by Compression.level
	}
	d.fw = fw
	return d
}

var errShortFlush = errors.New("websocket: compressor flush without sync marker")

// appendCompressed appends msg compressed as one frame with RSV1 set.
func (p *Protocol) appendCompressed(st *connState, dst []byte, op Opcode, msg []byte) ([]byte, error) {
	level := p.Compression.level()
	if st.dfl.ownBits < 15 {
		level = flate.HuffmanOnly // no back references, fits any window
	}
	d := st.enc
	pooled := false
	if d == nil {
		if st.dfl.ownNoCtx {
			if v := p.writers.Get(); v != nil && v.(*deflater).level == level {
				d = v.(*deflater)
				d.fw.Reset(d)
			} else {
				d = newDeflater(level)
			}
			pooled = true
		} else {
			d = newDeflater(level)
			st.enc = d
		}
	}
	d.buf = d.buf[:0]
	if _, err := d.fw.Write(msg); err != nil {
		return dst, fmt.Errorf("websocket: compress: %w", err)
	}
	if err := d.fw.Flush(); err != nil {
		return dst, fmt.Errorf("websocket: compress: %w", err)
	}
	z := d.buf
	if len(z) < 4 || string(z[len(z)-4:]) != "\x00\x00\xff\xff" {
		return dst, errShortFlush
	}
	z = z[:len(z)-4]
	if len(z) == 0 {
		z = append(z, 0x00) // an empty message: one empty stored block start
	}
	dst = appendFrame(dst, true, rsv1Bit, op, z, st.client, newMaskKey(st.client))
	if pooled {
		if cap(d.buf) > 64<<10 {
			d.buf = nil
		}
		p.writers.Put(d)
	}
	return dst, nil
}
