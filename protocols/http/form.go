package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Forms: the body of a POST (or PUT, PATCH...) sent by an HTML form, as
// application/x-www-form-urlencoded (PostForm and its kin, decoded like the
// query string) or as multipart/form-data (MultipartForm, with uploaded
// files). Both read the body the runtime has already framed and buffered
// whole (so MaxPackageSize bounds them); neither reads from the network.

// Form sentinels.
var (
	// ErrNotMultipart is returned by MultipartForm for a request whose
	// Content-Type is not multipart/form-data.
	ErrNotMultipart = errors.New("http: request is not multipart/form-data")
	// ErrBadForm is returned (wrapped, with the cause) by MultipartForm for
	// a multipart/form-data request that cannot be read: a missing or
	// invalid boundary, a malformed or truncated body, a part whose header
	// is over FormLimits.MaxPartHeaderBytes, more parts than
	// FormLimits.MaxParts. Answer it with 400.
	ErrBadForm = errors.New("http: malformed form")
)

// Form limit defaults.
const (
	// DefaultMaxFormParts caps the number of parts of a multipart form.
	DefaultMaxFormParts = 1000
	// DefaultMaxPartHeaderBytes caps the header of one part of a multipart
	// form.
	DefaultMaxPartHeaderBytes = 8 << 10
)

// FormLimits bounds what ParseMultipartForm accepts; a zero field means
// its default. The size of the body itself is bounded by the connection's
// MaxPackageSize before the request is delivered.
type FormLimits struct {
	// MaxParts caps the number of parts (values, files and parts without
	// a name alike). Default DefaultMaxFormParts (1000).
	MaxParts int
	// MaxPartHeaderBytes caps one part's header, counted as the fields
	// parsed ("Name: value\r\n" each). Default DefaultMaxPartHeaderBytes
	// (8 KiB).
	MaxPartHeaderBytes int
}

func (l FormLimits) withDefaults() FormLimits {
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxFormParts
	}
	if l.MaxPartHeaderBytes <= 0 {
		l.MaxPartHeaderBytes = DefaultMaxPartHeaderBytes
	}
	return l
}

// mediaTypeIs reports whether the Content-Type value v has media type mt
// (lower case), ignoring case, surrounding whitespace and parameters.
func mediaTypeIs(v []byte, mt string) bool {
	if i := indexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return equalFold(trimOWS(v), mt)
}

// IsPostForm reports whether the request's Content-Type is
// application/x-www-form-urlencoded (parameters such as charset allowed).
// It does not allocate.
func (r *Request) IsPostForm() bool {
	ct, ok := r.HeaderBytes("Content-Type")
	return ok && mediaTypeIs(ct, "application/x-www-form-urlencoded")
}

func (r *Request) formBody() []byte {
	if !r.IsPostForm() {
		return nil
	}
	return r.body
}

// PostFormParams iterates over the parameters of an
// application/x-www-form-urlencoded body in order, as sent (still
// percent-encoded, like QueryParams; decode a part with AppendUnescape and
// plus set). A parameter without "=" has an empty value; empty parameters
// ("a=1&&b=2") are skipped; ";" is not a separator. It yields nothing for
// another Content-Type. The views are valid while the Request is.
func (r *Request) PostFormParams() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) { pairs(r.formBody(), '&', yield) }
}

// AppendPostForm appends the decoded value of the first form parameter
// named key (compared after decoding) to dst. ok is false when there is no
// such parameter or the body is not application/x-www-form-urlencoded. It
// does not allocate unless dst must grow.
func (r *Request) AppendPostForm(dst []byte, key string) (_ []byte, ok bool) {
	return appendParam(dst, r.formBody(), key)
}

// PostForm returns the decoded value of the first parameter named key of
// an application/x-www-form-urlencoded body, or "" (also for another
// Content-Type). Decoding is the query string's: "+" is a space, %XX a
// byte, an invalid escape ("%zz", a trailing "%4") is kept as sent. It
// allocates only the result, and only when the value is not empty.
func (r *Request) PostForm(key string) string { return paramString(r.formBody(), key) }

// HasPostForm reports whether the urlencoded body has a parameter named
// key.
func (r *Request) HasPostForm(key string) bool {
	_, ok := r.AppendPostForm(nil, key)
	return ok
}

// PostFormValues returns the decoded values of every parameter named key
// of an application/x-www-form-urlencoded body, in order, or nil.
func (r *Request) PostFormValues(key string) []string { return paramValues(r.formBody(), key) }

// MultipartForm is a parsed multipart/form-data body: the values of the
// parts without a filename and the files of the parts with one, each in
// the order sent. It owns its memory (it copies from the request buffer),
// so it stays valid after OnMessage returns. It is safe for concurrent
// reads; it must not be modified.
type MultipartForm struct {
	values []formValue
	files  []*FormFile
}

type formValue struct{ name, value string }

// FormFile is one uploaded file of a multipart form.
type FormFile struct {
	// Name is the form field name (the name parameter of the part's
	// Content-Disposition).
	Name string
	// Filename is the filename parameter exactly as the client sent it
	// (after RFC 2231 decoding of filename*). It is chosen by the client:
	// never use it as a path; see SafeFilename.
	Filename string
	// ContentType is the part's Content-Type as sent, "" when absent.
	ContentType string
	// Header holds the part's header fields (canonical keys).
	Header textproto.MIMEHeader
	// Data is the content of the part, byte for byte (a
	// Content-Transfer-Encoding is not decoded). It is a copy owned by the
	// form, capacity capped at its length.
	Data []byte
}

// SafeFilename returns the last element of Filename with both "/" and "\"
// taken as separators, without control characters, or "" when nothing
// usable is left (empty, ".", ".."). It is a name to store under a
// directory of the caller's choosing, not a guarantee of uniqueness.
func (f *FormFile) SafeFilename() string {
	name := f.Filename
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "" || name == "." || name == ".." {
		return ""
	}
	return name
}

// Value returns the first value named key, or "".
func (f *MultipartForm) Value(key string) string {
	for _, v := range f.values {
		if v.name == key {
			return v.value
		}
	}
	return ""
}

// Values returns every value named key, in order, or nil.
func (f *MultipartForm) Values(key string) []string {
	var vs []string
	for _, v := range f.values {
		if v.name == key {
			vs = append(vs, v.value)
		}
	}
	return vs
}

// Fields iterates over the values (the parts without a filename) in
// order: name, value.
func (f *MultipartForm) Fields() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, v := range f.values {
			if !yield(v.name, v.value) {
				return
			}
		}
	}
}

// File returns the first file named key, or nil.
func (f *MultipartForm) File(key string) *FormFile {
	for _, ff := range f.files {
		if ff.Name == key {
			return ff
		}
	}
	return nil
}

// Files returns every file named key, in order, or nil.
func (f *MultipartForm) Files(key string) []*FormFile {
	var fs []*FormFile
	for _, ff := range f.files {
		if ff.Name == key {
			fs = append(fs, ff)
		}
	}
	return fs
}

// AllFiles returns every file of the form, in order. The slice is the
// form's own: do not modify it.
func (f *MultipartForm) AllFiles() []*FormFile { return f.files }

// MultipartForm parses the request's multipart/form-data body with
// DefaultMaxFormParts and DefaultMaxPartHeaderBytes (see
// ParseMultipartForm; use that for other limits). The result, or the
// error, is kept on the Request: calling it again for the same request
// returns it at once. It returns an error wrapping ErrNotMultipart for
// another Content-Type and one wrapping ErrBadForm for a body that cannot
// be read. Like every Request method, it is for OnMessage's goroutine.
func (r *Request) MultipartForm() (*MultipartForm, error) {
	if r.form == nil && r.formErr == nil {
		ct, _ := r.HeaderBytes("Content-Type")
		r.form, r.formErr = ParseMultipartForm(r.body, string(ct), FormLimits{})
	}
	return r.form, r.formErr
}

// ParseMultipartForm parses body as multipart/form-data whose
// Content-Type (with its boundary parameter) is contentType, with the
// parser of mime/multipart. A part whose Content-Disposition is not
// form-data or has no name is skipped (and counted as a part); a part with
// a non-empty filename parameter is a file, any other a value. An empty
// body, like any body without a closing delimiter, is malformed. It is
// safe for concurrent use.
func ParseMultipartForm(body []byte, contentType string, lim FormLimits) (*MultipartForm, error) {
	lim = lim.withDefaults()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		if !mediaTypeIs([]byte(contentType), "multipart/form-data") {
			return nil, ErrNotMultipart
		}
		return nil, fmt.Errorf("%w: content type: %w", ErrBadForm, err)
	}
	if mt != "multipart/form-data" {
		return nil, ErrNotMultipart
	}
	boundary := params["boundary"]
	if !validBoundary(boundary) {
		return nil, fmt.Errorf("%w: missing or invalid boundary %q", ErrBadForm, boundary)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	// Every file's Data and every value are substrings of the body: one
	// buffer of the body's size holds them all.
	arena := make([]byte, 0, len(body))
	form := &MultipartForm{}
	for n := 0; ; n++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			// mime/multipart also answers a bare io.EOF for a part
			// header cut short by the end of the body.
			if !hasCloseDelimiter(body, boundary) {
				return nil, fmt.Errorf("%w: part %d: %w", ErrBadForm, n, io.ErrUnexpectedEOF)
			}
			return form, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: part %d: %w", ErrBadForm, n, err)
		}
		if n >= lim.MaxParts {
			return nil, fmt.Errorf("%w: more than %d parts", ErrBadForm, lim.MaxParts)
		}
		if hb := headerBytes(p.Header); hb > lim.MaxPartHeaderBytes {
			return nil, fmt.Errorf("%w: part %d: header of %d bytes, over %d", ErrBadForm, n, hb, lim.MaxPartHeaderBytes)
		}
		start := len(arena)
		arena, err = readAppend(arena, p)
		if err != nil {
			return nil, fmt.Errorf("%w: part %d: %w", ErrBadForm, n, err)
		}
		disp, dp, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || disp != "form-data" || dp["name"] == "" {
			arena = arena[:start]
			continue
		}
		if fn := dp["filename"]; fn != "" {
			form.files = append(form.files, &FormFile{
				Name:        dp["name"],
				Filename:    fn,
				ContentType: p.Header.Get("Content-Type"),
				Header:      p.Header,
				Data:        arena[start:len(arena):len(arena)],
			})
			continue
		}
		form.values = append(form.values, formValue{name: dp["name"], value: string(arena[start:])})
		arena = arena[:start]
	}
}

// validBoundary reports whether b is a boundary of RFC 2046: 1 to 70
// characters of bchars, not ending in a space.
func validBoundary(b string) bool {
	if len(b) == 0 || len(b) > 70 || b[len(b)-1] == ' ' {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alnum && !strings.ContainsRune("'()+_,-./:=? ", rune(c)) {
			return false
		}
	}
	return true
}

// hasCloseDelimiter reports whether body has a line that is the close
// delimiter of boundary ("--" boundary "--", then optional spaces or
// tabs). Once mime/multipart has stopped at io.EOF such a line can only
// be what stopped it: a cut part header cannot hold one (it would be a
// malformed header line).
func hasCloseDelimiter(body []byte, boundary string) bool {
	delim := []byte("--" + boundary + "--")
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if rest, ok := bytes.CutPrefix(line, delim); ok && len(bytes.Trim(rest, " \t")) == 0 {
			return true
		}
	}
	return false
}

// headerBytes is the size of h written as "Name: value\r\n" lines.
func headerBytes(h textproto.MIMEHeader) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// readAppend appends what r yields until io.EOF to dst. It grows dst only
// when its capacity is reached (which earlier slices of dst survive).
func readAppend(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
