package http

import "iter"

// The accessors below return views of the request's buffer ([]byte results
// and iterator values: valid while the Request is, never to be modified) or
// fresh strings (allocated on each call unless noted).

func (r *Request) bytes(s span) []byte { return r.buf[s.off:s.end:s.end] }

// MethodBytes returns the method as sent ("GET").
func (r *Request) MethodBytes() []byte { return r.bytes(r.method) }

// Method returns the method. The standard methods are returned as
// constants, without allocating.
func (r *Request) Method() string {
	switch m := r.bytes(r.method); string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "HEAD":
		return "HEAD"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	case "TRACE":
		return "TRACE"
	default:
		return string(m)
	}
}

// TargetBytes returns the request target as sent ("/a/b?x=1"), the
// RequestURI of net/http.
func (r *Request) TargetBytes() []byte { return r.bytes(r.target) }

// Target returns the request target as sent.
func (r *Request) Target() string { return string(r.TargetBytes()) }

// PathBytes returns the path of the request target as sent (still
// percent-encoded). It is "/" for an absolute-form target without a path,
// "*" for OPTIONS *, empty for CONNECT.
func (r *Request) PathBytes() []byte {
	if r.path.len() == 0 && r.flags&fAbsolute != 0 {
		r.slash[0] = '/'
		return r.slash[:]
	}
	return r.bytes(r.path)
}

// Path returns the path with percent-escapes decoded (an invalid escape
// is kept as is). "+" is not a space in a path.
func (r *Request) Path() string {
	p := r.PathBytes()
	for _, c := range p {
		if c == '%' {
			return string(unescape(make([]byte, 0, len(p)), p, false))
		}
	}
	return string(p)
}

// RawQueryBytes returns the query of the request target, without the "?",
// as sent.
func (r *Request) RawQueryBytes() []byte { return r.bytes(r.query) }

// RawQuery returns the query of the request target, without the "?".
func (r *Request) RawQuery() string { return string(r.RawQueryBytes()) }

// QueryParams iterates over the query parameters in order, as sent (still
// percent-encoded; decode a part with AppendUnescape). A parameter
// without "=" has an empty value.
func (r *Request) QueryParams() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) { pairs(r.RawQueryBytes(), '&', yield) }
}

// AppendQuery appends the decoded value of the first query parameter
// named key (compared after decoding) to dst. ok is false when there is no
// such parameter. It does not allocate unless dst must grow.
func (r *Request) AppendQuery(dst []byte, key string) (_ []byte, ok bool) {
	return appendParam(dst, r.RawQueryBytes(), key)
}

// Query returns the decoded value of the first query parameter named key,
// or "".
func (r *Request) Query(key string) string { return paramString(r.RawQueryBytes(), key) }

// HasQuery reports whether a query parameter named key is present.
func (r *Request) HasQuery(key string) bool {
	_, ok := r.AppendQuery(nil, key)
	return ok
}

// QueryValues returns the decoded values of every query parameter named
// key, in order, or nil.
func (r *Request) QueryValues(key string) []string { return paramValues(r.RawQueryBytes(), key) }

// ProtoBytes returns the version as sent ("HTTP/1.1").
func (r *Request) ProtoBytes() []byte {
	if r.headLen == 0 {
		return nil
	}
	t := r.target.end + 1
	return r.buf[t : t+8 : t+8]
}

// Proto returns the version ("HTTP/1.1"), a constant for 1.0 and 1.1.
func (r *Request) Proto() string {
	switch p := r.ProtoBytes(); string(p) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	default:
		return string(p)
	}
}

// ProtoMajor returns the major version (always 1 for a parsed request).
func (r *Request) ProtoMajor() int { return int(r.major) }

// ProtoMinor returns the minor version as sent; a request of HTTP/1.2 and
// above is served as HTTP/1.1.
func (r *Request) ProtoMinor() int { return int(r.minor) }

// HostBytes returns the host the request is for: the authority of an
// absolute-form or CONNECT target, otherwise the Host field (trimmed).
func (r *Request) HostBytes() []byte { return r.bytes(r.host) }

// Host returns HostBytes as a string.
func (r *Request) Host() string { return string(r.HostBytes()) }

// KeepAlive reports whether the connection stays open after the response
// to this request: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
// "Connection: keep-alive", and never while the worker drains (as known
// when the request was read).
func (r *Request) KeepAlive() bool { return r.flags&fKeepAlive != 0 }

// Chunked reports whether the body was sent with chunked transfer coding.
func (r *Request) Chunked() bool { return r.flags&fChunked != 0 }

// ContentLength returns the Content-Length of the request, 0 when there
// is none, -1 when the body is chunked.
func (r *Request) ContentLength() int64 {
	switch {
	case r.flags&fChunked != 0:
		return -1
	case r.flags&fHasCL != 0:
		return r.clen
	}
	return 0
}

// ExpectContinue reports whether an HTTP/1.1 request carries
// "Expect: 100-continue".
func (r *Request) ExpectContinue() bool { return r.flags&fExpectContinue != 0 }

// Body returns the decoded body (de-chunked for a chunked request). It is
// empty until the body was framed (always so inside OnMessage; never after
// ParseRequest, which reads the head only).
func (r *Request) Body() []byte { return r.body }

// HeadLen returns the length of the head (leading blank lines, request
// line, fields, blank line), 0 while the head is incomplete.
func (r *Request) HeadLen() int { return r.headLen }

// NumHeaders returns the number of header field lines.
func (r *Request) NumHeaders() int { return len(r.fields) }

// Headers iterates over the header fields in order: name as sent, value
// with surrounding whitespace removed. A field sent several times appears
// several times.
func (r *Request) Headers() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range r.fields {
			if !yield(r.bytes(f.name), r.bytes(f.value)) {
				return
			}
		}
	}
}

func (r *Request) lookup(fs []field, name string) ([]byte, bool) {
	for _, f := range fs {
		if equalFold(r.bytes(f.name), name) {
			return r.bytes(f.value), true
		}
	}
	return nil, false
}

// HeaderBytes returns the value of the first header field named name
// (case-insensitive) and whether there is one. It does not allocate.
func (r *Request) HeaderBytes(name string) ([]byte, bool) { return r.lookup(r.fields, name) }

// Header returns the value of the first header field named name
// (case-insensitive), or "".
func (r *Request) Header(name string) string {
	v, _ := r.HeaderBytes(name)
	return string(v)
}

// HeaderValues returns the values of every header field named name
// (case-insensitive), one per field line, in order, or nil. Comma-separated
// lists inside one line are not split.
func (r *Request) HeaderValues(name string) []string {
	var vs []string
	for _, f := range r.fields {
		if equalFold(r.bytes(f.name), name) {
			vs = append(vs, string(r.bytes(f.value)))
		}
	}
	return vs
}

// HasToken reports whether any header field named name holds token as one
// of its comma-separated elements, both compared case-insensitively
// (HasToken("Connection", "upgrade")). It does not allocate.
func (r *Request) HasToken(name, token string) bool {
	for _, f := range r.fields {
		if !equalFold(r.bytes(f.name), name) {
			continue
		}
		v := r.bytes(f.value)
		for len(v) > 0 {
			var e []byte
			e, v = nextListElem(v)
			if i := indexByte(e, ';'); i >= 0 {
				e = trimOWS(e[:i])
			}
			if equalFold(e, token) {
				return true
			}
		}
	}
	return false
}

// TrailerBytes returns the value of the first trailer field (after a
// chunked body) named name, case-insensitively.
func (r *Request) TrailerBytes(name string) ([]byte, bool) { return r.lookup(r.trailers, name) }

// Trailer returns the value of the first trailer field named name, or "".
func (r *Request) Trailer(name string) string {
	v, _ := r.TrailerBytes(name)
	return string(v)
}

// Trailers iterates over the trailer fields in order.
func (r *Request) Trailers() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range r.trailers {
			if !yield(r.bytes(f.name), r.bytes(f.value)) {
				return
			}
		}
	}
}

// Cookies iterates over the cookies of every Cookie field in order, name
// and value as sent (a value's surrounding double quotes removed).
func (r *Request) Cookies() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range r.fields {
			if !equalFold(r.bytes(f.name), "cookie") {
				continue
			}
			ok := true
			pairs(r.bytes(f.value), ';', func(k, v []byte) bool {
				k = trimOWS(k)
				if len(k) == 0 {
					return true
				}
				v = trimOWS(v)
				if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				ok = yield(k, v)
				return ok
			})
			if !ok {
				return
			}
		}
	}
}

// CookieBytes returns the value of the first cookie named name (compared
// exactly) and whether there is one. It does not allocate.
func (r *Request) CookieBytes(name string) ([]byte, bool) {
	for k, v := range r.Cookies() {
		if string(k) == name {
			return v, true
		}
	}
	return nil, false
}

// Cookie returns the value of the first cookie named name, or "".
func (r *Request) Cookie(name string) string {
	v, _ := r.CookieBytes(name)
	return string(v)
}

// pairs calls yield for each sep-separated "k=v" element of s; an
// element without "=" has an empty value; empty elements are skipped.
func pairs(s []byte, sep byte, yield func(k, v []byte) bool) {
	for len(s) > 0 {
		i := indexByte(s, sep)
		var e []byte
		if i < 0 {
			e, s = s, nil
		} else {
			e, s = s[:i], s[i+1:]
		}
		if len(e) == 0 {
			continue
		}
		var k, v []byte
		if j := indexByte(e, '='); j >= 0 {
			k, v = e[:j], e[j+1:]
		} else {
			k, v = e, e[len(e):]
		}
		if !yield(k, v) {
			return
		}
	}
}

// rawParam returns the raw value of the first parameter of the
// "&"-separated list s named key (compared after decoding).
func rawParam(s []byte, key string) (val []byte, ok bool) {
	pairs(s, '&', func(k, v []byte) bool {
		if unescapedEqual(k, key) {
			val, ok = v, true
			return false
		}
		return true
	})
	return val, ok
}

// appendParam appends the decoded value of the parameter of s named key
// to dst (see rawParam).
func appendParam(dst, s []byte, key string) (_ []byte, ok bool) {
	v, ok := rawParam(s, key)
	if !ok {
		return dst, false
	}
	return unescape(dst, v, true), true
}

// paramString returns the decoded value of the parameter of s named key,
// or "", allocating only a non-empty result.
func paramString(s []byte, key string) string {
	v, ok := rawParam(s, key)
	if !ok || len(v) == 0 {
		return ""
	}
	return string(unescape(make([]byte, 0, len(v)), v, true))
}

// paramValues returns the decoded values of every parameter of s named
// key, in order, or nil.
func paramValues(s []byte, key string) []string {
	var vs []string
	pairs(s, '&', func(k, v []byte) bool {
		if unescapedEqual(k, key) {
			vs = append(vs, string(unescape(nil, v, true)))
		}
		return true
	})
	return vs
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// AppendUnescape appends s with percent-escapes decoded to dst; with plus,
// "+" decodes to a space (query strings and forms). Invalid escapes are
// copied as they are.
func AppendUnescape(dst, s []byte, plus bool) []byte { return unescape(dst, s, plus) }

func unescape(dst, s []byte, plus bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && hexval[s[i+1]] >= 0 && hexval[s[i+2]] >= 0:
			dst = append(dst, byte(hexval[s[i+1]])<<4|byte(hexval[s[i+2]]))
			i += 2
		case c == '+' && plus:
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// unescapedEqual reports whether query-decoding s gives key.
func unescapedEqual(s []byte, key string) bool {
	j := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && hexval[s[i+1]] >= 0 && hexval[s[i+2]] >= 0:
			c = byte(hexval[s[i+1]])<<4 | byte(hexval[s[i+2]])
			i += 2
		case c == '+':
			c = ' '
		}
		if j >= len(key) || key[j] != c {
			return false
		}
		j++
	}
	return j == len(key)
}
