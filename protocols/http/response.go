package http

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goes-project/goes/protocols"
)

// Field is one response header field.
type Field struct {
	Name, Value string
}

// Response is an answer with a chosen status, fields and body, written by
// Respond. Its zero value is a 200 with an empty body.
type Response struct {
	// Status is the status code, 200..999; 0 means 200. 1xx cannot be
	// sent this way.
	Status int
	// ContentType is the Content-Type; "" means the protocol's (unless
	// Header has a Content-Type field).
	ContentType string
	// Header holds extra fields, written in order. Server and Date given
	// here replace the protocol's. Content-Length, Transfer-Encoding and
	// Connection belong to the protocol and are refused.
	Header []Field
	// Body is the body. It is not sent for 204, 304 or a HEAD request.
	Body []byte
	// Close closes the connection after this response.
	Close bool
}

// Conn is what Respond needs of a connection; connections.Connection
// satisfies it.
type Conn interface {
	protocols.Conn
	SendBytes(data []byte, raw bool) error
	Close() error
}

// maxScratch is the largest Respond buffer a connection keeps between
// answers: larger responses are built in a buffer of their own.
const maxScratch = 8 << 10

// Respond answers the oldest unanswered request on c with resp (see the
// package documentation for the order of answers). It returns an error
// wrapping ErrBadResponse when resp cannot be written, ErrNoRequest when
// c has received no HTTP request, ErrStreamOpen while a streamed response
// (Stream) is in progress on c, or SendBytes's error. When the request,
// resp.Close or the draining worker ends the connection, the response says
// "Connection: close" and Respond closes c once it is written.
//
// Respond may be called from any goroutine that got c from an event
// callback after c's first request. It does not keep resp. It does not
// allocate in the steady state when its response fits in 8 KiB and one
// answer at a time is written per connection; otherwise it builds the
// response in a buffer of its own.
func Respond(c Conn, resp *Response) error {
	if err := resp.check(); err != nil {
		return err
	}
	st, ok := c.State().(*connState)
	if !ok {
		return ErrNoRequest
	}
	var date [29]byte
	var e AccessEntry
	st.mu.Lock()
	m, err := st.takeAnswer(&date, &e)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	buf, own := st.scratch[:0], !st.scratchBusy
	if own {
		st.scratchBusy = true
	} else {
		buf = nil
	}
	st.mu.Unlock()

	keep := m&mKeep != 0 && !resp.Close && !c.Draining()
	status := resp.Status
	if status == 0 {
		status = 200
	}
	body, z, vary := st.p.compress(m, status, resp.ContentType, resp.Header, resp.Body)
	buf = st.p.appendResponse(buf, &answer{
		status: status, ctype: resp.ContentType, header: resp.Header, body: body,
		head: m&mHead != 0, keep: keep, date: date[:], vary: vary, gzip: z != nil,
	})
	if z != nil {
		st.p.putGzipper(z)
	}
	if st.p.AccessLog != nil {
		st.p.logAccess(c, e, status, int64(len(buf)))
	}
	err = c.SendBytes(buf, true)
	if own {
		st.mu.Lock()
		if cap(buf) <= maxScratch {
			st.scratch = buf[:0]
		}
		st.scratchBusy = false
		st.mu.Unlock()
	}
	if !keep {
		c.Close()
	}
	return err
}

// check validates a Response before anything is written.
func (resp *Response) check() error {
	if resp.Status != 0 && (resp.Status < 200 || resp.Status > 999) {
		return fmt.Errorf("%w: status %d", ErrBadResponse, resp.Status)
	}
	if !validValue(resp.ContentType) {
		return fmt.Errorf("%w: content type %q", ErrBadResponse, strings.Clone(resp.ContentType))
	}
	for _, f := range resp.Header {
		if err := checkField(f); err != nil {
			return err
		}
	}
	return nil
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !vchar[s[i]] {
			return false
		}
	}
	return true
}

func equalFoldString(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && (x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z') {
			return false
		}
	}
	return true
}

// answer is what appendResponse writes.
type answer struct {
	status int
	ctype  string
	header []Field
	body   []byte
	head   bool // answering HEAD: no body
	keep   bool
	date   []byte
	frame  uint8  // how the body is delimited: frameLength, frameChunked, frameClose, frameSized
	size   int64  // frameSized: the Content-Length
	extra  []byte // field lines written after header, each ending in CRLF (not checked)
	vary   bool   // add "Vary: Accept-Encoding"
	gzip   bool   // body is gzip-coded: add "Content-Encoding: gzip", weaken a strong ETag
}

// Body delimitations of answer.frame.
const (
	frameLength  uint8 = iota // Content-Length (body given whole)
	frameChunked              // Transfer-Encoding: chunked, body streamed after the head
	frameClose                // HTTP/1.0: body streamed after the head, ended by closing
	frameSized                // Content-Length of answer.size, body written after the head
)

// appendResponse appends the wire form of a to dst.
func (p *Protocol) appendResponse(dst []byte, a *answer) []byte {
	if a.status == 200 {
		dst = append(dst, "HTTP/1.1 200 OK\r\n"...)
	} else {
		dst = append(dst, "HTTP/1.1 "...)
		dst = strconv.AppendInt(dst, int64(a.status), 10)
		dst = append(dst, ' ')
		dst = append(dst, StatusText(a.status)...)
		dst = append(dst, "\r\n"...)
	}
	var hasServer, hasDate, hasType bool
	for _, f := range a.header {
		switch len(f.Name) {
		case 4:
			hasDate = hasDate || equalFoldString(f.Name, "date")
		case 6:
			hasServer = hasServer || equalFoldString(f.Name, "server")
		case 12:
			hasType = hasType || equalFoldString(f.Name, "content-type")
		}
	}
	if !hasServer {
		dst = append(dst, "Server: "...)
		dst = append(dst, p.server()...)
		dst = append(dst, "\r\n"...)
	}
	if !hasDate {
		dst = append(dst, "Date: "...)
		dst = append(dst, a.date...)
		dst = append(dst, "\r\n"...)
	}
	noBody := a.status == 204 || a.status == 304
	if !hasType && !noBody {
		dst = append(dst, "Content-Type: "...)
		if a.ctype != "" {
			dst = append(dst, a.ctype...)
		} else {
			dst = append(dst, p.contentType()...)
		}
		dst = append(dst, "\r\n"...)
	}
	for _, f := range a.header {
		dst = append(dst, f.Name...)
		dst = append(dst, ": "...)
		if a.gzip && len(f.Value) > 0 && f.Value[0] == '"' && equalFoldString(f.Name, "etag") {
			// The coded body is another representation: its validator
			// cannot be the identity body's strong one.
			dst = append(dst, "W/"...)
		}
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, a.extra...)
	if a.gzip {
		dst = append(dst, "Content-Encoding: gzip\r\n"...)
	}
	if a.vary {
		dst = append(dst, "Vary: Accept-Encoding\r\n"...)
	}
	switch {
	case noBody || a.frame == frameClose:
	case a.frame == frameChunked:
		dst = append(dst, "Transfer-Encoding: chunked\r\n"...)
	case a.frame == frameSized:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, a.size, 10)
		dst = append(dst, "\r\n"...)
	default:
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(a.body)), 10)
		dst = append(dst, "\r\n"...)
	}
	if a.keep {
		dst = append(dst, "Connection: keep-alive\r\n\r\n"...)
	} else {
		dst = append(dst, "Connection: close\r\n\r\n"...)
	}
	if !noBody && !a.head {
		dst = append(dst, a.body...)
	}
	return dst
}
