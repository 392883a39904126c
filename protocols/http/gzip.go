package http

import (
	"compress/gzip"
	"strings"
)

// CompressOptions configure the gzip content coding of responses (see
// Protocol.Compress). The zero value compresses nothing.
type CompressOptions struct {
	// Enabled turns compression on.
	Enabled bool
	// MinSize is the smallest body compressed, in bytes; 0 means
	// DefaultCompressMinSize. Smaller bodies are sent as they are.
	MinSize int
	// Level is the compress/gzip level: gzip.BestSpeed (1) to
	// gzip.BestCompression (9), gzip.DefaultCompression (-1) or
	// gzip.HuffmanOnly (-2); 0 or any other value means
	// DefaultCompressLevel.
	Level int
	// Types are the content types worth compressing, as prefixes of the
	// response's Content-Type compared case-insensitively ("text/"
	// matches "text/html; charset=utf-8"); nil means "text/",
	// "application/json", "application/javascript", "application/xml"
	// and "image/svg+xml".
	Types []string
}

// DefaultCompressMinSize is the default CompressOptions.MinSize.
const DefaultCompressMinSize = 1 << 10

// DefaultCompressLevel is the default CompressOptions.Level: the fastest
// level, which on text bodies of a few KiB compresses nearly as well as
// gzip.DefaultCompression at a fraction of the cost (see
// BenchmarkCompress).
const DefaultCompressLevel = gzip.BestSpeed

// defaultCompressTypes is the default CompressOptions.Types.
var defaultCompressTypes = [...]string{
	"text/",
	"application/json",
	"application/javascript",
	"application/xml",
	"image/svg+xml",
}

func (o *CompressOptions) minSize() int {
	if o.MinSize <= 0 {
		return DefaultCompressMinSize
	}
	return o.MinSize
}

func (o *CompressOptions) level() int {
	if o.Level == gzip.DefaultCompression || o.Level == gzip.HuffmanOnly ||
		(o.Level >= gzip.BestSpeed && o.Level <= gzip.BestCompression) {
		return o.Level
	}
	return DefaultCompressLevel
}

// compressible reports whether a response of content type ctype is worth
// compressing.
func (o *CompressOptions) compressible(ctype string) bool {
	types := o.Types
	if types == nil {
		types = defaultCompressTypes[:]
	}
	for _, t := range types {
		if len(ctype) >= len(t) && equalFoldString(ctype[:len(t)], t) {
			return true
		}
	}
	return false
}

// Weights of content codings, in thousandths (qvalue 1 is 1000).
const (
	qUnlisted = -1
	qMax      = 1000
)

// codingPrefs are what Accept-Encoding field values say about the codings
// this package can send: each weight is qUnlisted or 0..qMax.
type codingPrefs struct {
	gzip, identity, star int
}

// acceptEncoding reads the Accept-Encoding field values of r.
func acceptEncoding(r *Request) codingPrefs {
	cp := codingPrefs{gzip: qUnlisted, identity: qUnlisted, star: qUnlisted}
	for _, f := range r.fields {
		if equalFold(r.bytes(f.name), "accept-encoding") {
			cp.add(r.bytes(f.value))
		}
	}
	return cp
}

// add reads one Accept-Encoding field value (RFC 9110, 12.5.3): a list of
// codings, each with an optional weight ";q=" qvalue. Codings compare
// case-insensitively and x-gzip is gzip. An element whose weight is not a
// valid qvalue is ignored. A coding listed several times keeps its
// lowest weight, so that a refusal (q=0) is never overridden.
func (cp *codingPrefs) add(v []byte) {
	for len(v) > 0 {
		var e []byte
		e, v = nextListElem(v)
		coding := e
		q := qMax
		if i := indexByte(e, ';'); i >= 0 {
			coding = trimOWS(e[:i])
			var ok bool
			if q, ok = weight(e[i+1:]); !ok {
				continue
			}
		}
		var dst *int
		switch {
		case equalFold(coding, "gzip") || equalFold(coding, "x-gzip"):
			dst = &cp.gzip
		case equalFold(coding, "identity"):
			dst = &cp.identity
		case len(coding) == 1 && coding[0] == '*':
			dst = &cp.star
		default:
			continue
		}
		if *dst == qUnlisted || q < *dst {
			*dst = q
		}
	}
}

// weight returns the q parameter among the parameters params (what
// follows a coding's first ';'), qMax when there is none, and false when
// its value is not a qvalue: "0" ["." 0*3DIGIT] or "1" ["." 0*3"0"].
func weight(params []byte) (int, bool) {
	q := qMax
	for len(params) > 0 {
		p := params
		if i := indexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			params = nil
		}
		p = trimOWS(p)
		if len(p) < 2 || p[0]|0x20 != 'q' || p[1] != '=' {
			continue
		}
		val := p[2:]
		if len(val) == 0 || len(val) > 5 || (val[0] != '0' && val[0] != '1') {
			return 0, false
		}
		q = int(val[0]-'0') * qMax
		if len(val) > 1 {
			if val[1] != '.' {
				return 0, false
			}
			scale := 100
			for _, d := range val[2:] {
				if d < '0' || d > '9' || (val[0] == '1' && d != '0') {
					return 0, false
				}
				q += int(d-'0') * scale
				scale /= 10
			}
		}
	}
	return q, true
}

// gzipOK reports whether the response may be, and should rather be,
// gzip-coded: gzip (listed, or covered by "*") has a weight above 0 and
// not below identity's. A request without Accept-Encoding gets identity.
func (cp codingPrefs) gzipOK() bool {
	g := cp.gzip
	if g == qUnlisted {
		g = cp.star
	}
	id := cp.identity
	if id == qUnlisted {
		id = 0
	}
	return g > 0 && g >= id
}

// appendBuffer is an io.Writer appending to a byte slice.
type appendBuffer []byte

func (b *appendBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// gzipper is a pooled gzip writer with its output buffer.
type gzipper struct {
	w   *gzip.Writer
	out appendBuffer
	in  [4 << 10]byte
}

// write codes b. It hands the writer copies of b, piece by piece, because
// escape analysis sees compress/flate keep what it is given: passing b
// itself would make every caller's body (and what holds it, such as a
// Response's header fields) escape to the heap, coded or not.
func (z *gzipper) write(b []byte) error {
	for len(b) > 0 {
		n := copy(z.in[:], b)
		if _, err := z.w.Write(z.in[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// maxPooledGzipBuf is the largest output buffer kept in the pool.
const maxPooledGzipBuf = 256 << 10

func (p *Protocol) getGzipper() *gzipper {
	if z, ok := p.gzips.Get().(*gzipper); ok {
		z.out = z.out[:0]
		z.w.Reset(&z.out)
		return z
	}
	z := &gzipper{}
	w, err := gzip.NewWriterLevel(&z.out, p.Compress.level())
	if err != nil { // level() only returns valid levels
		panic(err)
	}
	z.w = w
	return z
}

func (p *Protocol) putGzipper(z *gzipper) {
	if cap(z.out) > maxPooledGzipBuf {
		z.out = nil
	}
	p.gzips.Put(z)
}

// compress decides the content coding of an answer with status,
// content type ctype (before header's), header and body to a request
// whose queued metadata is m. When compression is enabled and the
// response is of a compressible type, at least MinSize long, of a status
// with a body other than 206, without Content-Encoding or Content-Range
// fields, vary is true: the answer must say "Vary: Accept-Encoding". When
// moreover the request accepts gzip (mGzip), is not HEAD, and the coded
// body is shorter, out is the coded body and z the gzipper holding it,
// for the caller to give back with putGzipper once out is written;
// otherwise out is body and z nil. It takes no *answer so that the
// answer, which holds the caller's Date array, does not escape.
func (p *Protocol) compress(m uint8, status int, ctype string, header []Field, body []byte) (out []byte, z *gzipper, vary bool) {
	o := &p.Compress
	if !o.Enabled || status < 200 || status == 204 || status == 206 || status == 304 ||
		len(body) < o.minSize() {
		return body, nil, false
	}
	if ctype == "" {
		ctype = p.contentType()
	}
	vary = true
	for _, f := range header {
		switch len(f.Name) {
		case 4:
			if equalFoldString(f.Name, "vary") && varies(f.Value) {
				vary = false
			}
		case 12:
			if equalFoldString(f.Name, "content-type") {
				ctype = f.Value
			}
		case 13:
			if equalFoldString(f.Name, "content-range") {
				return body, nil, false
			}
		case 16:
			if equalFoldString(f.Name, "content-encoding") {
				return body, nil, false
			}
		}
	}
	if !o.compressible(ctype) {
		return body, nil, false
	}
	if m&mGzip == 0 || m&mHead != 0 {
		return body, nil, vary
	}
	z = p.getGzipper()
	err := z.write(body)
	if err == nil {
		err = z.w.Close()
	}
	if err != nil || len(z.out) >= len(body) {
		p.putGzipper(z)
		return body, nil, vary
	}
	return z.out, z, vary
}

// varies reports whether a Vary field value already covers
// Accept-Encoding.
func varies(v string) bool {
	for len(v) > 0 {
		e := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		e = strings.Trim(e, " \t")
		if e == "*" || equalFoldString(e, "accept-encoding") {
			return true
		}
	}
	return false
}
