package http

import (
	"github.com/goes-project/goes/protocols"
)

// Streamed request bodies (Protocol.StreamBody). The head of a streamed
// request is framed alone and copied into the connection's state, where
// RequestOf finds it for as long as the body lasts; then every Input
// frames what the buffer holds of the body as one piece (for a chunked
// body: framing and at most one run of chunk data, and at the end the
// last chunk with the trailer section, whole), and Decode hands the
// piece's data to OnMessage. A piece is never kept: the runtime's buffer
// is empty after each read, whatever the body's size.

// maxStreamChunk caps a streamed body's chunk size, so that its count
// cannot overflow.
const maxStreamChunk = 1 << 60

// streamed asks p.StreamBody, once per request, whether the request whose
// head was just read has its body streamed.
func (p *Protocol) streamed(c protocols.Conn, st *connState) bool {
	r := &st.req
	if !st.asked {
		st.asked = true
		st.streamHead = false
		if r.flags&fChunked != 0 || r.flags&fHasCL != 0 && r.clen > 0 {
			st.streamHead = p.StreamBody(c, r)
		}
	}
	return st.streamHead
}

// beginStreamed decodes the head of a streamed request: it keeps a copy,
// queues the answer's metadata and delivers nothing (the pieces follow).
func (p *Protocol) beginStreamed(c protocols.Conn, st *connState, packet []byte) ([]byte, error) {
	st.streamHead = false
	r := &st.req
	st.head = append(st.head[:0], packet...)
	r.buf = st.head
	r.body = nil
	r.flags |= fStreamed
	st.streaming = true
	st.closeAfter = r.flags&fKeepAlive == 0
	if r.flags&fChunked != 0 {
		r.sc.state = sChunkSize
		r.sc.mark, r.sc.pos, r.sc.chunk = 0, 0, 0
	} else {
		st.left = r.clen
	}
	var m uint8
	if r.flags&fKeepAlive != 0 {
		m |= mKeep
	}
	if string(r.MethodBytes()) == "HEAD" {
		m |= mHead
	}
	if r.minor == 0 {
		m |= m10
	}
	if p.Compress.Enabled && acceptEncoding(r).gzipOK() {
		m |= mGzip
	}
	st.mu.Lock()
	st.push(m)
	if p.AccessLog != nil {
		st.pushAccess(r, len(packet)) // the head: the body comes in pieces
	}
	st.mu.Unlock()
	if r.flags&fExpectContinue != 0 && !st.continued {
		st.continued = true
		if err := c.WriteRaw(continueReply); err != nil {
			return nil, err
		}
	}
	return nil, protocols.ErrSkip
}

// inputPiece frames the next piece of a streamed body at the start of buf.
func (p *Protocol) inputPiece(c protocols.Conn, st *connState, buf []byte) (int, error) {
	if st.req.flags&fChunked == 0 {
		n := int64(len(buf))
		if n > st.left {
			n = st.left
		}
		st.framed = int(n)
		return int(n), nil
	}
	n, err := p.inputChunks(st, buf)
	if err != nil {
		re := p.refuse(c, st, buf, err)
		st.streaming = false
		st.discarding = true // the connection closes after the reply
		return 0, re
	}
	st.framed = n
	return n, nil
}

// inputChunks runs the chunked-body states over buf from its start, with
// positions relative to it, and returns the length of the piece: up to
// the end of buf, or up to where a second run of chunk data would start.
// The last chunk's size line and the trailer section after it are never
// split: when buf ends inside them, the piece ends before that line (0
// when nothing comes before it: more is needed). It records the piece's
// data run in st.piece and whether it ends the body in st.pieceLast.
func (p *Protocol) inputChunks(st *connState, buf []byte) (int, *Error) {
	r := &st.req
	sc := &r.sc
	lim := p.Limits.withDefaults()
	st.piece = span{}
	st.pieceLast = false
	start := *sc     // the state at buf[0]
	lineAt := -1     // start of the chunk-size line being read, when in buf
	var line scanner // the state there
	data := false
	pos := 0
	for pos < len(buf) {
		// A chunk-size line may hold maxChunkLine bytes before its LF
		// (sc.mark is where it began: before buf when it straddles).
		lend := len(buf)
		if sc.state <= sChunkLF && sc.state >= sChunkSize {
			if m := sc.mark + maxChunkLine; m <= pos {
				return 0, errChunkLineLong
			} else if m < lend {
				lend = m
			}
		}
		switch sc.state {
		case sChunkSize, sChunkHex, sChunkWS, sChunkExt:
			if sc.state == sChunkSize {
				lineAt, line = pos, *sc
			}
			var err *Error
			if pos, err = sc.chunkLine(buf, pos, lend, maxStreamChunk); err != nil {
				return 0, err
			}
		case sChunkLF:
			if buf[pos] != '\n' {
				return 0, errBareCR
			}
			pos++
			if sc.chunk == 0 {
				sc.trailer = true
				sc.trailerAt = pos
				sc.state = sFieldStart
				continue
			}
			sc.state = sChunkData
		case sChunkData:
			if data {
				return cutPiece(sc, pos), nil // one run of data per piece
			}
			n := min(uint64(len(buf)-pos), sc.chunk)
			data = true
			st.piece = mkspan(pos, pos+int(n))
			pos += int(n)
			sc.chunk -= n
			if sc.chunk == 0 {
				sc.state = sChunkCR
			}
		case sChunkCR:
			if buf[pos] != '\r' {
				return 0, errChunkData
			}
			pos++
			sc.state = sChunkDataLF
		case sChunkDataLF:
			if buf[pos] != '\n' {
				return 0, errChunkData
			}
			pos++
			sc.state = sChunkSize
			sc.mark = pos
		default: // the trailer section
			end := len(buf)
			if t := sc.trailerAt + lim.MaxHeaderBytes; t < end {
				end = t
			}
			var done bool
			var err *Error
			pos, done, err = r.scanFields(buf, pos, end, &lim)
			if err != nil {
				return 0, err
			}
			if done {
				sc.state = sDone
				st.pieceLast = true
				return pos, nil
			}
			if end < len(buf) {
				return 0, errTrailerTooLarge
			}
		}
	}
	if sc.trailer {
		// buf ends inside the trailer section: it comes whole, with the
		// last chunk's size line, in a piece of its own.
		r.trailers = r.trailers[:0]
		if lineAt > 0 {
			*sc = line
			return lineAt, nil
		}
		*sc = start
		st.piece = span{}
		return 0, nil
	}
	return cutPiece(sc, pos), nil
}

// cutPiece ends a piece at n: the start of a chunk-size line still being
// read is made relative to the next piece.
func cutPiece(sc *scanner, n int) int {
	sc.mark -= n
	return n
}

// decodePiece hands the data of a streamed body's piece to OnMessage (an
// empty piece with the body's end, for a chunked body), and ends the
// request after its last piece.
func (p *Protocol) decodePiece(c protocols.Conn, st *connState, packet []byte) ([]byte, error) {
	r := &st.req
	if st.framed != len(packet) {
		re := p.refuse(c, st, packet, errPacket)
		st.streaming = false
		st.discarding = true
		return nil, re
	}
	st.framed = 0
	var data []byte
	last := false
	if r.flags&fChunked == 0 {
		data = packet
		st.left -= int64(len(packet))
		last = st.left == 0
	} else {
		data = packet[st.piece.off:st.piece.end:st.piece.end]
		last = st.pieceLast
		if last && len(r.trailers) > 0 {
			// Keep the trailers with the head: rebase their spans.
			base := len(st.head)
			st.head = append(st.head, packet[r.sc.trailerAt:]...)
			r.buf = st.head
			shift := func(s span) span {
				return mkspan(int(s.off)-r.sc.trailerAt+base, int(s.end)-r.sc.trailerAt+base)
			}
			for i := range r.trailers {
				r.trailers[i].name = shift(r.trailers[i].name)
				r.trailers[i].value = shift(r.trailers[i].value)
			}
		}
		if len(data) == 0 && !last {
			return nil, protocols.ErrSkip // framing only
		}
	}
	r.body = data
	if last {
		r.flags |= fBodyDone
		st.streaming = false
		if st.closeAfter {
			st.discarding = true
		}
	}
	return data, nil
}

// Streamed reports whether the request's body comes to OnMessage in
// pieces (Protocol.StreamBody said so): OnMessage then runs once per piece
// with data (and Body) holding that piece, in order, the last time with
// BodyDone true.
func (r *Request) Streamed() bool { return r.flags&fStreamed != 0 }

// BodyDone reports whether the body is complete with the data OnMessage
// was given: always for a request that is not streamed; for a streamed
// one, on its last piece (which may be empty for a chunked body, whose
// trailers are then read). That is when a handler answers, usually.
func (r *Request) BodyDone() bool { return r.flags&fStreamed == 0 || r.flags&fBodyDone != 0 }

// PacketSize implements protocols.PacketSizer: once the head of the
// request at the start of buf is read and its body has a Content-Length
// (or none), the length of head and body, so that the runtime buffers the
// request in exactly that much memory; 0 while the head is incomplete,
// for a chunked body (its length is known at its end) and for a streamed
// one (never buffered).
func (p *Protocol) PacketSize(c protocols.Conn, buf []byte) int {
	st, ok := c.State().(*connState)
	if !ok || !st.inProgress || st.streaming || st.discarding || len(buf) < st.seen {
		return 0
	}
	r := &st.req
	if r.headLen == 0 || r.flags&fChunked != 0 {
		return 0
	}
	n := int64(r.headLen)
	if r.flags&fHasCL != 0 {
		n += r.clen
	}
	if n > int64(packetLimit(c)) {
		return 0
	}
	return int(n)
}

// overloadReply is the answer to a request whose connection is shed
// because the worker's input memory is spent.
var overloadReply = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 37\r\n" +
	"Retry-After: 5\r\n" +
	"Connection: close\r\n" +
	"\r\n" +
	"503 Service Unavailable: server busy\n")

// OverloadReply implements protocols.OverloadReplier: a connection the
// worker sheds (its budget for unfinished input is spent and this
// connection holds the most) is answered 503 with "Retry-After: 5" and
// "Connection: close", unless an answer it owes or is sending comes
// first (then it is closed without one). Safe for concurrent use with c's
// callbacks.
func (p *Protocol) OverloadReply(c protocols.Conn) []byte {
	if st, ok := c.State().(*connState); ok {
		st.mu.Lock()
		busy := st.qLen > 0 || st.stream != nil || st.scratchBusy
		st.mu.Unlock()
		if busy {
			return nil
		}
	}
	if p.AccessLog != nil {
		// Another connection's goroutine may shed c: c's reading state is
		// not to be read here.
		p.logRefused(c, nil, nil, 503, len(overloadReply))
	}
	return overloadReply
}

var (
	_ protocols.PacketSizer     = (*Protocol)(nil)
	_ protocols.OverloadReplier = (*Protocol)(nil)
)
