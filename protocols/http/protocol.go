// Package http implements the server side of HTTP/1.1 as a goes protocol:
// Input frames one request (head and body), Decode hands its decoded body
// to OnMessage, and Encode turns what OnMessage sends into a response.
//
//	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
//	goer.OnMessage = func(c connections.Connection, body []byte) {
//		req := http.RequestOf(c) // method, path, query, headers, cookies
//		if req.Path() == "/missing" {
//			http.Respond(c, &http.Response{Status: 404, Body: []byte("no such page")})
//			return
//		}
//		c.Send("hello, goer", false) // 200, text/html, Content-Length
//	}
//
// # Requests
//
// Keep-alive and pipelining are supported: several requests in one read are
// framed and delivered one after the other. A client that pipelines faster
// than it reads the answers is not read while the connection's
// MaxSendBufferSize of answers waits for it (its requests wait in the
// socket, as nginx's do); no answer is dropped, and a client that reads
// nothing is closed by the send timeout. Bodies are framed by
// Content-Length or by chunked transfer coding (trailers are kept apart,
// see Request.Trailers). HTTP/1.0 closes after each response unless the
// request says "Connection: keep-alive"; HTTP/1.1 keeps the connection
// unless it says "Connection: close". After a request that closes the
// connection, further input is read and dropped. When the worker drains
// (graceful stop or reload), every response carries "Connection: close"
// and the connection closes once it is written. An HTTP/1.1 request with
// "Expect: 100-continue" gets "100 Continue" as soon as its head is read,
// if its body has not arrived with it.
//
// The parser is strict, so that no two readers of a request can disagree
// on where it ends. It answers 400 for: a malformed request line; bare LF
// or bare CR anywhere in the head, a chunk-size line or the trailers (lines
// must end in CRLF; this package does not accept LF alone); a field line
// starting with whitespace (obsolete line folding); whitespace before a
// field's colon; a control character in a field value; Content-Length that
// is not 1*DIGIT (no sign, no list) or that is repeated with a different
// value; Content-Length together with Transfer-Encoding; Transfer-Encoding
// in an HTTP/1.0 request, with an empty list element, with chunked twice or
// not last, or with parameters on chunked; an invalid chunk-size line or
// chunk data not followed by CRLF; an HTTP/1.1 request without Host, with
// several Host fields, or with an invalid Host. It answers 413 when the
// request as sent (head and body, chunk framing and trailers included)
// exceeds the connection's MaxPackageSize, as soon as a Content-Length or a
// chunk size says so; 414 for a request target
// over Limits.MaxURIBytes; 417 for an Expect other than 100-continue; 431
// when the head or the trailer section exceeds Limits.MaxHeaderBytes or
// holds more than Limits.MaxHeaders fields; 501 for a transfer coding other
// than chunked before it; 505 for an HTTP major version other than 1. Every
// error is a *protocols.ReplyError whose Reply is a complete response with
// "Connection: close" and whose Err is an *Error; the runtime writes it
// and closes the connection. Errors are reported at the earliest byte that
// proves them, so a request split across reads fails exactly as it would
// whole.
//
// # Streamed request bodies
//
// A request's body is handed to OnMessage whole, so MaxPackageSize bounds
// it, and the worker's budget for unfinished input
// (connections.Config.MaxInputMemory) bounds all the bodies it buffers at
// once; PacketSize tells the runtime a body's length as soon as the head
// is read, so that it buffers the request in exactly that much memory, and
// a connection shed because that budget is spent is answered 503 with
// "Retry-After" (OverloadReply). A handler that accepts larger uploads
// sets Protocol.StreamBody: for the requests it says true to (it sees
// the head), the body goes to OnMessage in pieces as it arrives, each
// time with the bytes one read brought (for a chunked body, de-chunked,
// one chunk's data at most), and the runtime buffers none of it, so an
// upload of any size costs one read's memory:
//
//	p.StreamBody = func(c protocols.Conn, req *http.Request) bool { return req.Path() == "/upload" }
//	goer.OnMessage = func(c connections.Connection, data []byte) {
//		req := http.RequestOf(c)
//		if req.Streamed() {
//			file.Write(data) // a hash, a file, a proxied connection ...
//			if !req.BodyDone() {
//				return
//			}
//		}
//		c.Send("stored", false)
//	}
//
// Request.Streamed says that OnMessage gets pieces; Request.BodyDone is
// true on the last one (an empty one for a chunked body, whose trailers
// are then read), when the answer is usually sent. The request's head
// (RequestOf, Header, Path, ...) is valid on every piece; Body is the
// piece. Forms (PostForm, MultipartForm) read bodies that were not
// streamed. A streamed body is not limited by MaxPackageSize (which still
// bounds the head): the handler decides, from ContentLength or by
// counting, and may answer early and close. "Expect: 100-continue" is
// answered when the head is read.
//
// # Responses
//
// Send(body, false) answers the oldest unanswered request with 200, the
// protocol's content type, Content-Length, Server, Date and Connection;
// Respond answers with a Response (status, fields, body). A HEAD request's
// response carries no body. Answers are matched to requests in the order
// the requests arrived, one answer per request: answering inside OnMessage
// keeps pipelined responses in order by itself. A handler that answers
// later, from another goroutine, must answer requests in the order they
// came (for example by calling PauseRecv in OnMessage and ResumeRecv after
// answering). Raw sends (Send(data, true)) bypass the protocol and are not
// counted as answers.
//
// # Streamed responses
//
// Stream starts the answer to the oldest unanswered request and returns a
// StreamWriter for a body of unknown length; SSE does the same for a
// Server-Sent Events stream (text/event-stream, Event). HTTP/1.1 clients
// get "Transfer-Encoding: chunked", one chunk per Write, and End sends the
// last chunk with optional trailers; HTTP/1.0 clients get the body
// unframed and the connection closes at End; HEAD (and 204, 304) get the
// head only. Every Write is queued on the send buffer at once; its errors
// are the connection's (ErrSendBufferFull: the piece was dropped whole,
// write it again after OnBufferDrain; ErrClosed: the client is gone).
// The writer is safe for concurrent use, so a producer goroutine can own
// it.
//
// While a stream is open its connection does not read (PauseRecv until
// End): pipelined requests behind it are delivered, and answered, after
// it, and Respond, Send or another Stream on the connection meanwhile
// fail with ErrStreamOpen. A consequence: a client that leaves while its
// stream is silent is noticed at the next Write, not before (OnClose runs
// then), so a long-lived event stream should send a comment
// (EventStream.Comment) now and then. A stream open when the worker
// drains goes on until End (which then closes the connection) or until
// the drain's timeout closes it.
//
// # Files
//
// ServeFile answers a GET or HEAD with a file of an fs.FS (os.DirFS,
// embed.FS, fs.Sub): Content-Type from the extension, Content-Length,
// Last-Modified and an ETag; 304 for If-None-Match or If-Modified-Since;
// 206 for a single byte range (416 when unsatisfiable; If-Range honoured).
// A missing file, a directory or another method is returned as an error
// with nothing written, for the caller to answer 404, 403 or 405. A body
// over 64 KiB is sent by a goroutine of its own in 64 KiB pieces, each
// queued once the send buffer has room (see connections.WaitDrained), so
// a download holds at most MaxSendBufferSize plus one piece whatever the
// file's size; meanwhile the connection reads nothing, as with Stream.
//
// # Compression
//
// With Protocol.Compress.Enabled, answers sent by Send and Respond are
// gzip-coded (compress/gzip, writers pooled per protocol) for a request
// whose Accept-Encoding accepts gzip: "gzip" or "x-gzip", or "*", with a
// weight above 0 and not below identity's ("gzip;q=0" refuses; names are
// case-insensitive; a request without Accept-Encoding gets identity).
// They then carry "Content-Encoding: gzip", the coded Content-Length, and
// a strong ETag given in Response.Header is sent weak (W/). Only bodies
// of Compress.Types (text/*, JSON, JavaScript, XML, SVG by default) of
// at least Compress.MinSize bytes (1 KiB) are coded, and not those of
// 204, 206 or 304 responses or of a Response whose Header has
// Content-Encoding or Content-Range; a body the coding would not shorten
// is sent as it is. Every answer that would be coded for some
// Accept-Encoding says "Vary: Accept-Encoding", coded or not (unless
// Response.Header has a Vary covering it). A HEAD request is never
// coded: it gets the identity Content-Length and Vary. Streamed responses
// (Stream, SSE) and ServeFile are not coded.
//
// # Forms
//
// PostForm, PostFormValues and PostFormParams read an
// application/x-www-form-urlencoded body the way Query reads the query
// string (workerman's $request->post()). MultipartForm parses a
// multipart/form-data body with mime/multipart into values and files
// (FormFile: name, filename as sent, content type, data), at most
// DefaultMaxFormParts parts with headers of at most
// DefaultMaxPartHeaderBytes each (ParseMultipartForm takes other
// limits); a body it cannot read is an error wrapping ErrBadForm, for the
// handler to answer 400. Both work on the body as buffered, so
// MaxPackageSize bounds an upload (larger ones are streamed: see above);
// the form copies what it keeps and outlives the request.
//
// # Timeouts
//
// The protocol tells the connection runtime where each connection stands
// (Protocol.Phase, a protocols.Phaser), and the runtime's timeouts,
// on by default (see connections.Config), do the rest: a request head
// must arrive within HeaderTimeout (30 s; the first from the accept), a
// body must keep coming (something within every BodyTimeout, 60 s, and
// at least BodyMinRate, 1 KiB/s, over each), both answered 408 Request
// Timeout and closed; a keep-alive connection waits at most
// KeepAliveTimeout (75 s) for its next request, then closes silently;
// while a request is being answered nothing bounds the wait, except
// SendTimeout (60 s) for a client that takes none of the answer.
//
// Steady state allocates nothing: the per-connection state (parser, field
// slices, answer queue) is taken from a pool by a connection's first
// request and reused; the connections runtime gives it back to the pool
// whenever the connection idles (see ReleaseState), so an idle keep-alive
// connection costs no protocol state.
package http

import (
	"sync"
	"time"

	"github.com/goes-project/goes/protocols"
)

// Protocol is the HTTP/1.1 protocol. Its zero value is ready to use; its
// fields must not change once it serves connections. A *Protocol is safe
// for concurrent use by any number of connections.
type Protocol struct {
	// Limits bound request heads; zero fields mean the defaults.
	Limits
	// ServerName is the value of the Server field of responses. Default
	// "goes".
	ServerName string
	// ContentType is the Content-Type of Send's responses and of a
	// Response without one. Default "text/html; charset=utf-8".
	ContentType string
	// Compress configures the gzip content coding of responses sent by
	// Send and Respond (see the package documentation); off by default.
	Compress CompressOptions

	// StreamBody, when set, is asked about every request with a body
	// (Content-Length over 0, or chunked) once its head is read: true
	// makes the body go to OnMessage in pieces as it arrives instead of
	// whole, so that an upload of any size costs no more memory than one
	// read (see "Streamed request bodies" in the package documentation).
	// MaxPackageSize then bounds the head only; the handler decides how
	// much body it takes (req.ContentLength; a chunked body's length is
	// known at its end). It runs on the connection's goroutine, inside
	// Input: it may look at req and c.SetContext, and must not block or
	// send (answer from OnMessage).
	StreamBody func(c protocols.Conn, req *Request) bool

	// AccessLog, when set, is told of every answered request (see
	// AccessEntry), the requests the protocol refuses itself included (a
	// parser's error, TimedOut's 408, OverloadReply's 503). Nil costs the
	// request path nothing.
	AccessLog AccessLogger

	// states holds the per-connection states of idle connections (see
	// ReleaseState).
	states sync.Pool
	// gzips holds idle *gzipper of Compress.Level.
	gzips sync.Pool
}

var (
	_ protocols.Protocol = (*Protocol)(nil)
	_ protocols.Phaser   = (*Protocol)(nil)
)

// NewHttpProtocol returns an HTTP protocol with the default settings (the
// zero Protocol), under the seed's name, which workerman-style programs
// use.
func NewHttpProtocol() *Protocol { return &Protocol{} }

// New is NewHttpProtocol under the short name most callers use.
func New() *Protocol { return NewHttpProtocol() }

// Name returns "http".
func (*Protocol) Name() string { return "http" }

const (
	defaultServer      = "goes"
	defaultContentType = "text/html; charset=utf-8"
)

func (p *Protocol) server() string {
	if p.ServerName == "" {
		return defaultServer
	}
	return p.ServerName
}

func (p *Protocol) contentType() string {
	if p.ContentType == "" {
		return defaultContentType
	}
	return p.ContentType
}

// Answer metadata queued by Decode for Encode and Respond.
const (
	mKeep uint8 = 1 << iota // the connection stays open after the answer
	mHead                   // HEAD: no body
	m10                     // HTTP/1.0: no chunked transfer coding
	mGzip                   // Compress is on and the request accepts gzip
)

// queueLen bounds the answers a connection may owe; beyond it the oldest
// request is forgotten (it was answered raw or not at all).
const queueLen = 256

// connState is one connection's protocol state, made on its first Input.
type connState struct {
	p   *Protocol
	req Request

	// Reading side: the connection's reading goroutine only.
	inProgress bool // req holds a partly framed request at the start of the buffer
	seen       int  // buffer length at the last Input of that request
	framed     int  // packet length Input framed and Decode has not taken
	discardN   int  // length of a packet of input to drop (after a closing request)
	discarding bool // a request closed the connection: drop the rest
	continued  bool // 100 Continue sent for the request in progress

	// A streamed body (StreamBody, streambody.go): the reading goroutine's.
	asked      bool   // StreamBody was asked about the request in progress
	streamHead bool   // the packet Input framed is a streamed request's head
	streaming  bool   // the body of the request delivered last comes in pieces
	closeAfter bool   // that request closes the connection: discard after its body
	left       int64  // Content-Length body bytes still to come
	piece      span   // the data of the piece Input framed (chunked)
	pieceLast  bool   // that piece ends the body (its trailers start at req.sc.trailerAt)
	head       []byte // the streamed request's head and trailers, copied

	// AccessLog, for the entry of a request the protocol refuses itself
	// (refused): the reading goroutine's.
	began              time.Time // the request's first read that did not complete it
	accMethod, accPath string    // its request line, copied at that read (for a timeout)

	// Answering side: Encode and Respond, any goroutine.
	mu          sync.Mutex
	q           [queueLen]uint8
	qHead, qLen int
	dateSec     int64
	date        [29]byte
	scratch     []byte // Respond's buffer
	scratchBusy bool
	stream      *StreamWriter // the streamed response in progress, if any
	acc         []AccessEntry // AccessLog: the unanswered requests, oldest first
}

// stateOf returns c's state, taking one from the pool (or making one) for
// the first request after the connection was accepted or was idle. Only
// the connection's dispatcher calls it.
func (p *Protocol) stateOf(c protocols.Conn) *connState {
	if st, ok := c.State().(*connState); ok {
		return st
	}
	st, _ := p.states.Get().(*connState)
	if st == nil {
		st = &connState{p: p}
		st.req.fields = make([]field, 0, 16)
	}
	c.SetState(st)
	return st
}

// ReleaseState gives c's state (about 1 KiB: the request with its field
// slices, the answer queue, the date cache) back to the protocol's pool
// when c is idle: no request partly read, none owed an answer, no Respond
// or streamed response (Stream) in progress, and c not closing after a
// request. The next request takes
// a state from the pool again, so an idle keep-alive connection holds
// none and steady traffic allocates none. It implements
// connections.StateReleaser: the runtime calls it on c's dispatcher, with
// c's send lock held, once every byte received has been delivered.
//
// Answers keep working around it: Send (Encode) on a connection without
// state answers as to a keep-alive GET, and Respond, which needs the
// request owed an answer, finds the state kept until it is answered.
func (p *Protocol) ReleaseState(c protocols.Conn) {
	st, ok := c.State().(*connState)
	if !ok || st.inProgress || st.framed != 0 || st.discardN != 0 || st.discarding || st.streaming {
		return
	}
	st.mu.Lock()
	idle := st.qLen == 0 && !st.scratchBusy && st.stream == nil
	st.mu.Unlock()
	if !idle {
		return
	}
	c.SetState(nil)
	st.req.reset()
	st.seen, st.continued, st.qHead = 0, false, 0
	st.asked, st.streamHead = false, false
	if cap(st.head) > 2*DefaultMaxHeaderBytes {
		st.head = nil
	}
	p.states.Put(st)
}

// Phase tells the runtime's read timeouts where c stands
// (protocols.Phaser): PhaseHead while a request head is partly received
// (HeaderTimeout), PhaseBody while its body is (BodyTimeout and
// BodyMinRate), PhaseBusy while an answer is owed (a request being
// handled, a Respond or streamed response in progress, or input dropped
// after a request that closes the connection), and PhaseIdle between
// requests (KeepAliveTimeout; before the first request, HeaderTimeout
// from the accept). It runs where Input runs, or with c's send lock held
// while Input does not: the answer queue is read under its own lock.
func (p *Protocol) Phase(c protocols.Conn, partial bool) protocols.Phase {
	st, ok := c.State().(*connState)
	if !ok {
		return protocols.PhaseIdle
	}
	switch {
	case st.discarding || st.discardN != 0:
		return protocols.PhaseBusy
	case st.streaming:
		// A streamed body still arriving (StreamBody): its pieces are
		// delivered, but the body is held to the body timeout and
		// minimum rate as a buffered one is; only its end makes the
		// answer owed.
		return protocols.PhaseBody
	case st.inProgress && st.req.headLen == 0:
		return protocols.PhaseHead
	case st.inProgress:
		return protocols.PhaseBody
	}
	st.mu.Lock()
	owed := st.qLen > 0 || st.scratchBusy || st.stream != nil
	st.mu.Unlock()
	switch {
	case owed:
		return protocols.PhaseBusy
	case partial:
		return protocols.PhaseHead
	}
	return protocols.PhaseIdle
}

// timeoutReply answers a request whose head or body took too long.
var timeoutReply = (&Error{Status: 408, Reason: "the request did not arrive in time"}).Reply()

// TimedOut is what the runtime sends before it closes a connection whose
// phase ran out of time (protocols.Phaser): a request head or body that
// took too long is answered 408 Request Timeout with "Connection:
// close"; a keep-alive wait that ran out closes silently.
func (p *Protocol) TimedOut(c protocols.Conn, ph protocols.Phase) []byte {
	if ph == protocols.PhaseHead || ph == protocols.PhaseBody {
		if p.AccessLog != nil {
			st, _ := c.State().(*connState)
			p.logRefused(c, st, nil, 408, len(timeoutReply))
		}
		return timeoutReply
	}
	return nil
}

// RequestOf returns the request being delivered on c. It is valid only
// inside OnMessage (the next request reuses it) and only on c's own
// goroutine; it is nil on a connection that has received no HTTP request.
func RequestOf(c protocols.Conn) *Request {
	if st, ok := c.State().(*connState); ok {
		return &st.req
	}
	return nil
}

var continueReply = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func packetLimit(c protocols.Conn) int {
	n := c.MaxPackageSize()
	if n <= 0 || n > maxPacket {
		n = maxPacket
	}
	return n
}

// frame advances the framing of the request at the start of buf.
func (p *Protocol) frame(c protocols.Conn, st *connState, buf []byte) (int, *Error) {
	if !st.inProgress || len(buf) < st.seen {
		st.req.reset()
		st.inProgress = true
		st.continued = false
		st.asked, st.streamHead = false, false
		if p.AccessLog != nil {
			st.began, st.accMethod, st.accPath = time.Time{}, "", ""
		}
	}
	st.seen = len(buf)
	lim := p.Limits.withDefaults()
	limit := packetLimit(c)
	r := &st.req
	n, err := r.scanHead(buf, &lim, limit)
	if err == nil && n > 0 && p.StreamBody != nil && p.streamed(c, st) {
		n = r.headLen // the head alone: the body follows in pieces
	} else if err == nil && n > 0 {
		n, err = r.scanBody(buf, &lim, limit)
	}
	if err != nil || n > 0 {
		st.inProgress = false
	}
	if n > 0 && c.Draining() {
		r.flags &^= fKeepAlive
	}
	return n, err
}

// Input frames the first request in buf: it returns the length of the
// head and body once both are complete, 0 while more is needed, and a
// *protocols.ReplyError as soon as the request is known to be invalid or
// too large. Progress is kept between calls, so a request arriving in many
// reads is scanned once. After a request that closes the connection it
// returns len(buf) (and Decode skips that input).
func (p *Protocol) Input(c protocols.Conn, buf []byte) (int, error) {
	st := p.stateOf(c)
	if st.discarding {
		st.discardN = len(buf)
		return len(buf), nil
	}
	if st.streaming {
		return p.inputPiece(c, st, buf)
	}
	n, err := p.frame(c, st, buf)
	if err != nil {
		return 0, p.refuse(c, st, buf, err)
	}
	if n > 0 {
		st.framed = n
		return n, nil
	}
	if p.AccessLog != nil {
		st.notePartial()
	}
	if r := &st.req; r.headLen > 0 && r.flags&fExpectContinue != 0 && !st.continued {
		st.continued = true
		if err := c.WriteRaw(continueReply); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// Decode returns the body of the request in packet (de-chunked in place
// when it was chunked: the chunk framing inside packet is overwritten) and
// queues what its answer needs. The full request is RequestOf(c).
func (p *Protocol) Decode(c protocols.Conn, packet []byte) ([]byte, error) {
	st := p.stateOf(c)
	if st.discardN > 0 {
		st.discardN = 0
		return nil, protocols.ErrSkip
	}
	if st.streaming {
		return p.decodePiece(c, st, packet)
	}
	r := &st.req
	if st.framed == 0 || st.framed != len(packet) {
		// Not framed by Input: frame it now.
		st.inProgress = false
		n, err := p.frame(c, st, packet)
		if err == nil && n != len(packet) {
			st.inProgress = false
			err = errPacket
		}
		if err != nil {
			return nil, p.refuse(c, st, packet, err)
		}
	}
	st.framed = 0
	if st.streamHead {
		return p.beginStreamed(c, st, packet)
	}
	r.buf = packet
	if r.flags&fChunked != 0 {
		r.body = r.dechunk(packet)
	} else {
		r.body = packet[r.headLen:len(packet):len(packet)]
	}
	var m uint8
	if r.flags&fKeepAlive != 0 {
		m |= mKeep
	} else {
		st.discarding = true
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
		st.pushAccess(r, len(packet))
	}
	st.mu.Unlock()
	return r.body, nil
}

// push queues the answer metadata of a request. mu held.
func (st *connState) push(m uint8) {
	if st.qLen == queueLen {
		st.qHead = (st.qHead + 1) % queueLen
		st.qLen--
	}
	st.q[(st.qHead+st.qLen)%queueLen] = m
	st.qLen++
}

// unpop gives back the metadata pop took, when its answer could not be
// started. mu held.
func (st *connState) unpop(m uint8) {
	if st.qLen == queueLen {
		return
	}
	st.qHead = (st.qHead + queueLen - 1) % queueLen
	st.q[st.qHead] = m
	st.qLen++
}

// pop takes the metadata of the oldest unanswered request; an answer to
// no request is treated as one to a keep-alive GET. mu held.
func (st *connState) pop() uint8 {
	if st.qLen == 0 {
		return mKeep
	}
	m := st.q[st.qHead]
	st.qHead = (st.qHead + 1) % queueLen
	st.qLen--
	return m
}

// takeAnswer claims the answer to the oldest unanswered request: its
// request's flags, with the Date field value copied into date; it fails
// with ErrStreamOpen while a streamed response is open. mu held.
func (st *connState) takeAnswer(date *[29]byte, e *AccessEntry) (uint8, error) {
	if st.stream != nil {
		return 0, ErrStreamOpen
	}
	m := st.pop()
	if st.p.AccessLog != nil {
		*e = st.popAccess()
	}
	copy(date[:], st.dateNow())
	return m, nil
}

// dateNow returns the Date field value for now, cached for a second. mu
// held.
func (st *connState) dateNow() []byte {
	now := time.Now()
	if sec := now.Unix(); sec != st.dateSec {
		st.dateSec = sec
		now.UTC().AppendFormat(st.date[:0], TimeFormat)
	}
	return st.date[:]
}

// TimeFormat is the format of the Date field (IMF-fixdate).
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"

// Encode answers the oldest unanswered request with a 200 response whose
// body is msg: Server, Date, Content-Type (the protocol's), Content-Length
// and Connection fields; no body for HEAD. When the request or the
// draining worker ends the connection, the response says
// "Connection: close" and Encode calls c.CloseAfterFlush. While a streamed
// response (Stream) is in progress on c, Encode refuses with ErrStreamOpen
// and writes nothing.
func (p *Protocol) Encode(c protocols.Conn, dst, msg []byte) ([]byte, error) {
	m := mKeep
	var date [29]byte
	var e AccessEntry
	if st, ok := c.State().(*connState); ok {
		st.mu.Lock()
		if st.stream != nil {
			st.mu.Unlock()
			return dst, ErrStreamOpen
		}
		m = st.pop()
		if p.AccessLog != nil {
			e = st.popAccess()
		}
		copy(date[:], st.dateNow())
		st.mu.Unlock()
	} else {
		time.Now().UTC().AppendFormat(date[:0], TimeFormat)
	}
	keep := m&mKeep != 0 && !c.Draining()
	body, z, vary := p.compress(m, 200, "", nil, msg)
	n0 := len(dst)
	dst = p.appendResponse(dst, &answer{status: 200, body: body, head: m&mHead != 0, keep: keep, date: date[:],
		vary: vary, gzip: z != nil})
	if p.AccessLog != nil {
		p.logAccess(c, e, 200, int64(len(dst)-n0))
	}
	if z != nil {
		p.putGzipper(z)
	}
	if !keep {
		c.CloseAfterFlush()
	}
	return dst, nil
}
