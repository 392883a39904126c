package http

import "math"

// Defaults of the Limits fields.
const (
	// DefaultMaxHeaderBytes caps the head: leading blank lines, the request
	// line, the header fields and the blank line that ends them.
	DefaultMaxHeaderBytes = 8 << 10
	// DefaultMaxHeaders caps the number of header fields (and, separately,
	// of trailer fields).
	DefaultMaxHeaders = 100
	// DefaultMaxURIBytes caps the request target: RFC 9112 recommends
	// accepting request lines of at least 8000 octets.
	DefaultMaxURIBytes = 8000
)

// maxChunkLine caps one chunk-size line (size and extensions).
const maxChunkLine = 4 << 10

// maxPacket caps a packet whatever MaxPackageSize says: offsets are 32-bit
// (and an int holds them on 32-bit platforms too).
const maxPacket = min(math.MaxUint32, math.MaxInt)

// Limits bound what a request head may contain. A zero (or negative)
// field means its default.
type Limits struct {
	// MaxHeaderBytes caps the head (request line, header fields and the
	// blank line ending them, leading blank lines included) and, separately,
	// a chunked body's trailer section. Over it: 431. Default
	// DefaultMaxHeaderBytes (8 KiB).
	MaxHeaderBytes int
	// MaxHeaders caps the number of header fields and, separately, of
	// trailer fields. Over it: 431. Default DefaultMaxHeaders (100).
	MaxHeaders int
	// MaxURIBytes caps the request target. Over it: 414 (unless the head
	// limit is reached first: 431). Default DefaultMaxURIBytes (8000).
	MaxURIBytes int
}

// withDefaults returns l with zero fields replaced by their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxURIBytes <= 0 {
		l.MaxURIBytes = DefaultMaxURIBytes
	}
	return l
}

// span is a byte range of Request.buf.
type span struct{ off, end uint32 }

func mkspan(off, end int) span { return span{uint32(off), uint32(end)} }

func (s span) len() int { return int(s.end - s.off) }

// field is one header or trailer field line: its name and its value with
// surrounding whitespace removed.
type field struct{ name, value span }

// Request flags.
const (
	fChunked        uint16 = 1 << iota // Transfer-Encoding: chunked
	fHasCL                             // Content-Length present
	fHasTE                             // Transfer-Encoding present
	fTENotFinal                        // a coding follows chunked, or chunked absent
	fTEOther                           // a coding other than chunked
	fConnClose                         // Connection: close
	fConnKeepAlive                     // Connection: keep-alive
	fConnUpgrade                       // Connection: upgrade
	fExpectContinue                    // Expect: 100-continue (HTTP/1.1)
	fExpectOther                       // another expectation
	fKeepAlive                         // the connection stays open after this request
	fAbsolute                          // absolute-form request target
	fStreamed                          // the body goes to OnMessage in pieces (Protocol.StreamBody)
	fBodyDone                          // a streamed body's last piece is being delivered
)

// Scanner states. The head and the chunked body are read by one resumable
// byte-level state machine, so that a request split across reads is
// checked exactly as the same request read at once, and every error is the
// one of the earliest offending byte.
const (
	sLead        uint8 = iota // before the request line: optional CRLFs
	sLeadLF                   // after a leading CR
	sMethod                   // in the method
	sTarget                   // in the request target
	sVersion                  // in "HTTP/x.y" CRLF
	sFieldStart               // at the start of a field line or the final CRLF
	sName                     // in a field name
	sValue                    // in a field value
	sFieldLF                  // after a field line's CR
	sEndLF                    // after the CR of the blank line
	sHeadDone                 // the head is complete
	sChunkSize                // at the start of a chunk-size line
	sChunkHex                 // in the chunk size
	sChunkWS                  // whitespace after the chunk size
	sChunkExt                 // in chunk extensions
	sChunkLF                  // after a chunk-size line's CR
	sChunkData                // in chunk data
	sChunkCR                  // expecting CR after chunk data
	sChunkDataLF              // expecting LF after chunk data
	sDone                     // the whole request is framed
)

// scanner is the resumable parse position within Request.buf.
type scanner struct {
	state     uint8
	trailer   bool   // field states are reading the trailer section
	hosts     uint8  // Host fields seen
	pos       int    // next byte to examine
	mark      int    // start of the current token or line
	nameEnd   int    // end of the current field name
	valStart  int    // start of the current field value
	valEnd    int    // end of the current field value
	chunk     uint64 // size of the current chunk / data bytes left
	trailerAt int    // start of the trailer section
}

// Request is one parsed HTTP request. Its byte ranges point into the
// buffer it was parsed from; the strings its methods return are made only
// when asked for (Method and Proto return constants for the common values).
// A Request is reused from one request to the next: inside OnMessage it is
// valid until OnMessage returns. It is not safe for concurrent use.
type Request struct {
	buf      []byte
	method   span
	target   span
	path     span
	query    span
	host     span
	fields   []field
	trailers []field
	body     []byte
	headLen  int
	clen     int64 // Content-Length value (saturated); meaningful with fHasCL
	clval    span  // the first Content-Length value
	flags    uint16
	major    uint8
	minor    uint8
	slash    [1]byte // PathBytes of an absolute-form target without a path
	sc       scanner
	form     *MultipartForm // MultipartForm's result, kept for the request
	formErr  error
}

// reset empties r for a new request, keeping the capacity of its slices.
func (r *Request) reset() {
	fields, trailers := r.fields[:0], r.trailers[:0]
	*r = Request{fields: fields, trailers: trailers}
}

// ParseRequest parses the head of the request at the start of buf (any
// leading CRLFs, the request line, the header fields and the blank line
// ending them) into req, replacing what req held. It does not read the
// body: ContentLength and Chunked tell how the body is framed.
//
// It returns n > 0, the length of the head, when the head is complete and
// valid; 0 and a nil error when more bytes are needed; or an *Error (with
// the status to answer: 400, 414, 417, 431, 501 or 505) as soon as buf
// holds enough to know the request is invalid. Calling it again with more
// bytes re-parses from the start. req aliases buf: buf must not change
// while req is in use. lim's zero fields mean the defaults.
//
// The rules are those of the protocol's Input (see the package
// documentation), except that the size of the body is not checked.
// ParseRequest does not allocate once req's field slice has grown to the
// number of fields seen. It is safe for concurrent use on different
// Requests.
func ParseRequest(buf []byte, req *Request, lim Limits) (n int, err error) {
	req.reset()
	lim = lim.withDefaults()
	n, e := req.scanHead(buf, &lim, maxPacket)
	if e != nil {
		return 0, e
	}
	return n, nil
}

// Byte classes.
var (
	tchar  [256]bool // token characters (method, field names, codings)
	tgchar [256]bool // request-target characters: visible ASCII and obs-text
	vchar  [256]bool // field-value characters: HTAB, SP, visible ASCII, obs-text
	hchar  [256]bool // Host characters: reg-name, IP literal, port
	hexval [256]int8 // hex digit value, or -1
)

func init() {
	for c := 0; c < 256; c++ {
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		tchar[c] = alnum
		tgchar[c] = c > 0x20 && c != 0x7f
		vchar[c] = c == '\t' || c >= 0x20 && c != 0x7f
		hchar[c] = alnum
		hexval[c] = -1
		switch {
		case c >= '0' && c <= '9':
			hexval[c] = int8(c - '0')
		case c >= 'a' && c <= 'f':
			hexval[c] = int8(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			hexval[c] = int8(c - 'A' + 10)
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		tchar[c] = true
	}
	for _, c := range []byte("-._~!$&'()*+,;=:[]%") {
		hchar[c] = true
	}
}

// scanHead advances the head scan over buf. It returns the head length
// once the head is complete, 0 when more is needed, or the error of the
// earliest offending byte. limit caps the packet (MaxPackageSize).
func (r *Request) scanHead(b []byte, lim *Limits, limit int) (int, *Error) {
	r.buf = b
	if r.headLen > 0 {
		return r.headLen, nil
	}
	win := lim.MaxHeaderBytes
	if limit < win {
		win = limit
	}
	end := len(b)
	if end > win {
		end = win
	}
	done, err := r.scanHeadBytes(b, end, lim)
	if err != nil {
		return 0, err
	}
	if done {
		return r.headLen, nil
	}
	if len(b) > end {
		if win < lim.MaxHeaderBytes {
			return 0, errTooLarge
		}
		return 0, errHeaderTooLarge
	}
	return 0, nil
}

// scanHeadBytes runs the head states over b[sc.pos:end].
func (r *Request) scanHeadBytes(b []byte, end int, lim *Limits) (bool, *Error) {
	sc := &r.sc
	pos := sc.pos
	defer func() { sc.pos = pos }()
	for pos < end {
		switch sc.state {
		case sLead:
			switch b[pos] {
			case '\r':
				sc.state = sLeadLF
				pos++
			case '\n':
				return false, errBareLF
			default:
				sc.mark = pos
				sc.state = sMethod
			}
		case sLeadLF:
			if b[pos] != '\n' {
				return false, errBareCR
			}
			pos++
			sc.state = sLead
		case sMethod:
			for pos < end && tchar[b[pos]] {
				pos++
			}
			if pos == end {
				return false, nil
			}
			if b[pos] != ' ' || pos == sc.mark {
				return false, errMethod
			}
			r.method = mkspan(sc.mark, pos)
			pos++
			sc.mark = pos
			sc.state = sTarget
		case sTarget:
			stop := end
			if m := sc.mark + lim.MaxURIBytes; m < stop {
				stop = m
			}
			for pos < stop && tgchar[b[pos]] {
				pos++
			}
			if pos == end {
				return false, nil
			}
			if tgchar[b[pos]] {
				return false, errURITooLong
			}
			if b[pos] != ' ' || pos == sc.mark {
				return false, errTarget
			}
			r.target = mkspan(sc.mark, pos)
			pos++
			sc.mark = pos
			sc.state = sVersion
		case sVersion:
			for pos < end {
				c := b[pos]
				switch i := pos - sc.mark; {
				case i < 5:
					if c != "HTTP/"[i] {
						return false, errVersionSyntax
					}
				case i == 5 || i == 7:
					if c < '0' || c > '9' {
						return false, errVersionSyntax
					}
				case i == 6:
					if c != '.' {
						return false, errVersionSyntax
					}
				case i == 8:
					if c == '\n' {
						return false, errBareLF
					}
					if c != '\r' {
						return false, errVersionSyntax
					}
				default:
					if c != '\n' {
						return false, errBareCR
					}
					r.major = b[sc.mark+5] - '0'
					r.minor = b[sc.mark+7] - '0'
					if r.major != 1 {
						pos++
						return false, errVersion
					}
					sc.state = sFieldStart
				}
				pos++
				if sc.state != sVersion {
					break
				}
			}
		case sFieldStart, sName, sValue, sFieldLF, sEndLF:
			var done bool
			var err *Error
			pos, done, err = r.scanFields(b, pos, end, lim)
			if err != nil || done {
				if done {
					r.headLen = pos
					sc.state = sHeadDone
					err = r.finishHead(b)
				}
				return done && err == nil, err
			}
		}
	}
	return false, nil
}

// scanFields runs the field-line states (of the head or, with sc.trailer,
// of the trailer section) from pos to end. done reports the blank line.
func (r *Request) scanFields(b []byte, pos, end int, lim *Limits) (int, bool, *Error) {
	sc := &r.sc
	for pos < end {
		switch sc.state {
		case sFieldStart:
			c := b[pos]
			if c == '\r' {
				sc.state = sEndLF
				pos++
				continue
			}
			if !tchar[c] {
				switch c {
				case ' ', '\t':
					return pos, false, errObsFold
				case '\n':
					return pos, false, errBareLF
				case ':':
					return pos, false, errEmptyName
				}
				return pos, false, errFieldName
			}
			sc.mark = pos
			sc.state = sName
		case sName:
			for pos < end && tchar[b[pos]] {
				pos++
			}
			if pos == end {
				return pos, false, nil
			}
			switch b[pos] {
			case ':':
			case ' ', '\t':
				return pos, false, errSpaceBeforeCol
			default:
				return pos, false, errFieldName
			}
			sc.nameEnd = pos
			pos++
			sc.valStart = pos
			sc.state = sValue
		case sValue:
			for pos < end && vchar[b[pos]] {
				pos++
			}
			if pos == end {
				return pos, false, nil
			}
			switch b[pos] {
			case '\r':
			case '\n':
				return pos, false, errBareLF
			default:
				return pos, false, errFieldValue
			}
			sc.valEnd = pos
			pos++
			sc.state = sFieldLF
		case sFieldLF:
			if b[pos] != '\n' {
				return pos, false, errBareCR
			}
			pos++
			if err := r.addField(b, lim); err != nil {
				return pos, false, err
			}
			sc.state = sFieldStart
		case sEndLF:
			if b[pos] != '\n' {
				return pos, false, errBareCR
			}
			return pos + 1, true, nil
		}
	}
	return pos, false, nil
}

// addField records the field line just read and, in the head, acts on the
// fields that frame the request.
func (r *Request) addField(b []byte, lim *Limits) *Error {
	sc := &r.sc
	vs, ve := sc.valStart, sc.valEnd
	for vs < ve && (b[vs] == ' ' || b[vs] == '\t') {
		vs++
	}
	for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
		ve--
	}
	f := field{name: mkspan(sc.mark, sc.nameEnd), value: mkspan(vs, ve)}
	if sc.trailer {
		if len(r.trailers) >= lim.MaxHeaders {
			return errTooManyTrailers
		}
		r.trailers = append(r.trailers, f)
		return nil
	}
	if len(r.fields) >= lim.MaxHeaders {
		return errTooManyHeaders
	}
	r.fields = append(r.fields, f)
	name, val := b[sc.mark:sc.nameEnd], b[vs:ve]
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			return r.onHost(f.value, val)
		}
	case 6:
		if equalFold(name, "expect") {
			if equalFold(val, "100-continue") {
				r.flags |= fExpectContinue
			} else {
				r.flags |= fExpectOther
			}
		}
	case 10:
		if equalFold(name, "connection") {
			r.onConnection(val)
		}
	case 14:
		if equalFold(name, "content-length") {
			return r.onContentLength(val)
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return r.onTransferEncoding(val)
		}
	}
	return nil
}

func (r *Request) onHost(s span, val []byte) *Error {
	r.sc.hosts++
	if r.sc.hosts > 1 {
		return errHostMultiple
	}
	for _, c := range val {
		if !hchar[c] {
			return errHostSyntax
		}
	}
	r.host = s
	return nil
}

func (r *Request) onConnection(val []byte) {
	for len(val) > 0 {
		var tok []byte
		tok, val = nextListElem(val)
		switch {
		case equalFold(tok, "close"):
			r.flags |= fConnClose
		case equalFold(tok, "keep-alive"):
			r.flags |= fConnKeepAlive
		case equalFold(tok, "upgrade"):
			r.flags |= fConnUpgrade
		}
	}
}

// onContentLength accepts 1*DIGIT only (no sign, no list); repeated fields
// must carry the same value.
func (r *Request) onContentLength(val []byte) *Error {
	if len(val) == 0 {
		return errCLSyntax
	}
	var n int64
	for _, c := range val {
		if c < '0' || c > '9' {
			return errCLSyntax
		}
		if n < math.MaxInt64/100 {
			n = n*10 + int64(c-'0')
		} // else saturate: far over any package limit
	}
	if r.flags&fHasCL != 0 {
		if string(trimZeros(val)) != string(trimZeros(r.buf[r.clval.off:r.clval.end])) {
			return errCLConflict
		}
		return nil
	}
	r.flags |= fHasCL
	r.clen = n
	r.clval = r.fields[len(r.fields)-1].value
	return nil
}

func trimZeros(v []byte) []byte {
	for len(v) > 1 && v[0] == '0' {
		v = v[1:]
	}
	return v
}

// onTransferEncoding reads one Transfer-Encoding field: a list of codings,
// possibly continuing an earlier field. Empty elements are refused.
func (r *Request) onTransferEncoding(val []byte) *Error {
	r.flags |= fHasTE
	if len(val) == 0 {
		return errTESyntax
	}
	for {
		var elem []byte
		i := 0
		for i < len(val) && val[i] != ',' {
			i++
		}
		elem = trimOWS(val[:i])
		if len(elem) == 0 {
			return errTESyntax
		}
		j := 0
		for j < len(elem) && tchar[elem[j]] {
			j++
		}
		if j == 0 {
			return errTESyntax
		}
		if j < len(elem) { // parameters must follow: OWS ";"
			k := j
			for k < len(elem) && (elem[k] == ' ' || elem[k] == '\t') {
				k++
			}
			if k == len(elem) || elem[k] != ';' {
				return errTESyntax
			}
		}
		coding := elem[:j]
		if equalFold(coding, "chunked") {
			if j != len(elem) {
				return errTESyntax // chunked takes no parameters
			}
			if r.flags&fChunked != 0 {
				return errTEChunkedTwice
			}
			r.flags |= fChunked
			r.flags &^= fTENotFinal
		} else {
			r.flags |= fTEOther
			if r.flags&fChunked != 0 {
				r.flags |= fTENotFinal
			}
		}
		if i == len(val) {
			return nil
		}
		val = val[i+1:]
	}
}

// finishHead checks what needs the whole head and splits the target.
func (r *Request) finishHead(b []byte) *Error {
	f := r.flags
	if f&fHasTE != 0 {
		switch {
		case r.minor == 0:
			return errTEHTTP10
		case f&fHasCL != 0:
			return errCLAndTE
		case f&fChunked == 0 || f&fTENotFinal != 0:
			return errTENotFinal
		case f&fTEOther != 0:
			return errTEUnknown
		}
	}
	if r.minor >= 1 {
		if r.sc.hosts == 0 {
			return errHostMissing
		}
		if f&fExpectOther != 0 {
			return errExpect
		}
	} else {
		r.flags &^= fExpectContinue | fExpectOther // HTTP/1.0 expectations are ignored
	}
	if r.minor >= 1 {
		if f&fConnClose == 0 {
			r.flags |= fKeepAlive
		}
	} else if f&fConnKeepAlive != 0 && f&fConnClose == 0 {
		r.flags |= fKeepAlive
	}
	return r.splitTarget(b)
}

// splitTarget finds the path and query of the request target; for an
// absolute-form target its authority replaces the Host field.
func (r *Request) splitTarget(b []byte) *Error {
	t := r.target
	tb := b[t.off:t.end]
	switch {
	case tb[0] == '/':
	case len(tb) == 1 && tb[0] == '*':
		r.path = t
		return nil
	case string(b[r.method.off:r.method.end]) == "CONNECT":
		for _, c := range tb {
			if !hchar[c] {
				return errTarget
			}
		}
		r.host = t
		r.path = mkspan(int(t.end), int(t.end))
		return nil
	default: // absolute-form: scheme "://" authority [path-abempty] ["?" query]
		i := 0
		for i < len(tb) && (tb[i] >= 'a' && tb[i] <= 'z' || tb[i] >= 'A' && tb[i] <= 'Z' ||
			i > 0 && (tb[i] >= '0' && tb[i] <= '9' || tb[i] == '+' || tb[i] == '-' || tb[i] == '.')) {
			i++
		}
		if i == 0 || len(tb) < i+3 || string(tb[i:i+3]) != "://" {
			return errTarget
		}
		as := i + 3
		ae := as
		for ae < len(tb) && tb[ae] != '/' && tb[ae] != '?' {
			if !hchar[tb[ae]] && tb[ae] != '@' {
				return errTarget
			}
			ae++
		}
		r.flags |= fAbsolute
		r.host = mkspan(int(t.off)+as, int(t.off)+ae)
		t.off += uint32(ae)
	}
	q := t.off
	for q < t.end && b[q] != '?' {
		q++
	}
	r.path = span{t.off, q}
	if q < t.end {
		r.query = span{q + 1, t.end}
	} else {
		r.query = span{t.end, t.end}
	}
	return nil
}

// scanBody advances the framing of the body after a complete head and
// returns the packet length once the request is complete. limit caps the
// packet; lim caps the trailer section.
func (r *Request) scanBody(b []byte, lim *Limits, limit int) (int, *Error) {
	r.buf = b
	sc := &r.sc
	if sc.state == sDone {
		return sc.pos, nil
	}
	if r.flags&fChunked == 0 {
		var cl int64
		if r.flags&fHasCL != 0 {
			cl = r.clen
		}
		if cl > int64(limit-r.headLen) {
			return 0, errTooLarge
		}
		n := r.headLen + int(cl)
		if len(b) < n {
			return 0, nil
		}
		sc.state, sc.pos = sDone, n
		return n, nil
	}
	if sc.state == sHeadDone {
		sc.state = sChunkSize
		sc.pos = r.headLen
		sc.mark = r.headLen
	}
	done, end, err := r.scanChunks(b, lim, limit)
	switch {
	case err != nil:
		return 0, err
	case done:
		return sc.pos, nil
	case len(b) <= end:
		return 0, nil
	case end == limit:
		return 0, errTooLarge
	}
	return 0, errTrailerTooLarge
}

// window is the end of the bytes the chunked states may examine: the
// packet limit and, in the trailer section, the trailer limit.
func (r *Request) window(n int, lim *Limits, limit int) int {
	end := n
	if end > limit {
		end = limit
	}
	if r.sc.trailer {
		if t := r.sc.trailerAt + lim.MaxHeaderBytes; t < end {
			end = t
		}
	}
	return end
}

// scanChunks runs the chunked-body states over b from sc.pos and returns
// whether the request is complete and the end of the window it examined.
func (r *Request) scanChunks(b []byte, lim *Limits, limit int) (bool, int, *Error) {
	sc := &r.sc
	pos := sc.pos
	defer func() { sc.pos = pos }()
	end := r.window(len(b), lim, limit)
	for pos < end {
		// A chunk-size line may hold maxChunkLine bytes before its LF.
		lend := end
		if sc.state <= sChunkLF && sc.state >= sChunkSize {
			if m := sc.mark + maxChunkLine; m <= pos {
				return false, end, errChunkLineLong
			} else if m < lend {
				lend = m
			}
		}
		switch sc.state {
		case sChunkSize, sChunkHex, sChunkWS, sChunkExt:
			var err *Error
			if pos, err = sc.chunkLine(b, pos, lend, uint64(limit)); err != nil {
				return false, end, err
			}
		case sChunkLF:
			if b[pos] != '\n' {
				return false, end, errBareCR
			}
			pos++
			if sc.chunk == 0 {
				sc.trailer = true
				sc.trailerAt = pos
				sc.state = sFieldStart
				end = r.window(len(b), lim, limit)
				continue
			}
			// The data, its CRLF and the last chunk "0" CRLF CRLF must fit.
			if sc.chunk+7 > uint64(limit-pos) {
				return false, end, errTooLarge
			}
			sc.state = sChunkData
		case sChunkData:
			n := uint64(end - pos)
			if n > sc.chunk {
				n = sc.chunk
			}
			pos += int(n)
			sc.chunk -= n
			if sc.chunk == 0 {
				sc.state = sChunkCR
			}
		case sChunkCR:
			if b[pos] != '\r' {
				return false, end, errChunkData
			}
			pos++
			sc.state = sChunkDataLF
		case sChunkDataLF:
			if b[pos] != '\n' {
				return false, end, errChunkData
			}
			pos++
			sc.state = sChunkSize
			sc.mark = pos
		default: // trailer field states
			var done bool
			var err *Error
			pos, done, err = r.scanFields(b, pos, end, lim)
			if err != nil {
				return false, end, err
			}
			if done {
				sc.state = sDone
				return true, end, nil
			}
		}
	}
	return false, end, nil
}

// chunkLine takes one step through a chunk-size line (states sChunkSize,
// sChunkHex, sChunkWS and sChunkExt) at b[pos], reading no further than
// lend, and returns the next position; at sChunkSize it marks the line's
// start. A size over max is errTooLarge. The framing of whole packets
// (scanChunks) and streamed bodies (inputChunks) share it.
func (sc *scanner) chunkLine(b []byte, pos, lend int, max uint64) (int, *Error) {
	switch sc.state {
	case sChunkSize:
		sc.mark = pos
		if hexval[b[pos]] < 0 {
			return pos, errChunkSize
		}
		sc.chunk = 0
		sc.state = sChunkHex
		return pos, nil
	case sChunkHex:
		for pos < lend {
			v := hexval[b[pos]]
			if v < 0 {
				break
			}
			if sc.chunk > max>>4 { // the shift would pass max (or overflow)
				return pos, errTooLarge
			}
			sc.chunk = sc.chunk<<4 | uint64(v)
			if sc.chunk > max {
				return pos, errTooLarge
			}
			pos++
		}
		if pos == lend {
			return pos, nil
		}
		fallthrough
	case sChunkWS:
		switch b[pos] {
		case ' ', '\t':
			sc.state = sChunkWS
		case ';':
			sc.state = sChunkExt
		case '\r':
			sc.state = sChunkLF
		case '\n':
			return pos, errBareLF
		default:
			return pos, errChunkSize
		}
		return pos + 1, nil
	default: // sChunkExt
		for pos < lend && vchar[b[pos]] {
			pos++
		}
		if pos == lend {
			return pos, nil
		}
		switch b[pos] {
		case '\r':
			sc.state = sChunkLF
		case '\n':
			return pos, errBareLF
		default:
			return pos, errChunkSize
		}
		return pos + 1, nil
	}
}

// dechunk decodes the chunked body of the framed packet b in place and
// returns it. b must have been framed by scanBody.
func (r *Request) dechunk(b []byte) []byte {
	w, p := r.headLen, r.headLen
	for {
		var size int
		for hexval[b[p]] >= 0 {
			size = size<<4 | int(hexval[b[p]])
			p++
		}
		for b[p] != '\n' {
			p++
		}
		p++
		if size == 0 {
			break
		}
		copy(b[w:], b[p:p+size])
		w += size
		p += size + 2
	}
	return b[r.headLen:w:w]
}

// nextListElem splits the first element off a comma-separated list,
// trimming whitespace.
func nextListElem(v []byte) (elem, rest []byte) {
	i := 0
	for i < len(v) && v[i] != ',' {
		i++
	}
	elem = trimOWS(v[:i])
	if i < len(v) {
		i++
	}
	return elem, v[i:]
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// equalFold reports whether b equals s, ASCII case-insensitively.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}
