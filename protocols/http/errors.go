package http

import (
	"errors"
	"strconv"

	"github.com/goes-project/goes/protocols"
)

// Sentinel errors, one per status a request can be refused with. Every
// *Error unwraps to exactly one of them (a 413 also to
// protocols.ErrPackageTooLarge), so callers can test with errors.Is.
var (
	// ErrBadRequest: malformed or ambiguous request (400).
	ErrBadRequest = errors.New("http: bad request")
	// ErrBodyTooLarge: the request exceeds the connection's MaxPackageSize (413).
	ErrBodyTooLarge = errors.New("http: request too large")
	// ErrURITooLong: the request target exceeds Limits.MaxURIBytes (414).
	ErrURITooLong = errors.New("http: request target too long")
	// ErrExpectation: an Expect other than 100-continue (417).
	ErrExpectation = errors.New("http: expectation failed")
	// ErrHeaderTooLarge: the head or the trailer section exceeds
	// Limits.MaxHeaderBytes or Limits.MaxHeaders (431).
	ErrHeaderTooLarge = errors.New("http: request header fields too large")
	// ErrNotImplemented: a transfer coding other than chunked (501).
	ErrNotImplemented = errors.New("http: transfer coding not implemented")
	// ErrVersion: an HTTP major version other than 1 (505).
	ErrVersion = errors.New("http: http version not supported")
	// ErrRequestTimeout: the request's head or body did not arrive in
	// time (408; see Protocol.TimedOut).
	ErrRequestTimeout = errors.New("http: request timeout")

	// ErrNoRequest is returned by Respond on a connection that has not
	// received an HTTP request (or is not served by this protocol).
	ErrNoRequest = errors.New("http: no request on this connection")
	// ErrBadResponse is returned by Respond for a Response that cannot be
	// written (status out of range, invalid or reserved header field).
	ErrBadResponse = errors.New("http: invalid response")
)

// Error is a request that cannot be served. Status is the HTTP status code
// to answer with and Reason a short constant description. Errors returned
// by this package are shared values: do not modify them.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string {
	return "http: " + strconv.Itoa(e.Status) + " " + StatusText(e.Status) + ": " + e.Reason
}

// Unwrap returns the sentinel of e's status (and, for 413,
// protocols.ErrPackageTooLarge).
func (e *Error) Unwrap() []error {
	switch e.Status {
	case 413:
		return []error{ErrBodyTooLarge, protocols.ErrPackageTooLarge}
	case 414:
		return []error{ErrURITooLong}
	case 417:
		return []error{ErrExpectation}
	case 431:
		return []error{ErrHeaderTooLarge}
	case 501:
		return []error{ErrNotImplemented}
	case 505:
		return []error{ErrVersion}
	case 408:
		return []error{ErrRequestTimeout}
	}
	return []error{ErrBadRequest}
}

// Reply returns a complete HTTP/1.1 response for e, with Connection: close
// and a short text/plain body naming the problem. It allocates a new slice
// on every call.
func (e *Error) Reply() []byte {
	text := StatusText(e.Status)
	body := strconv.Itoa(e.Status) + " " + text + ": " + e.Reason + "\n"
	b := make([]byte, 0, 128+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	return append(b, body...)
}

func badRequest(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// The errors of the parser. They are shared and never modified.
var (
	errBareLF          = badRequest("bare LF (lines must end in CRLF)")
	errBareCR          = badRequest("CR not followed by LF")
	errMethod          = badRequest("invalid method")
	errTarget          = badRequest("invalid request target")
	errVersionSyntax   = badRequest("invalid http version")
	errFieldName       = badRequest("invalid header field name")
	errSpaceBeforeCol  = badRequest("whitespace before colon in header field")
	errObsFold         = badRequest("obsolete line folding or leading whitespace in header field")
	errFieldValue      = badRequest("invalid character in header field value")
	errEmptyName       = badRequest("empty header field name")
	errCLSyntax        = badRequest("invalid content-length")
	errCLConflict      = badRequest("conflicting content-length values")
	errCLAndTE         = badRequest("content-length with transfer-encoding")
	errTESyntax        = badRequest("invalid transfer-encoding")
	errTEChunkedTwice  = badRequest("chunked applied more than once")
	errTENotFinal      = badRequest("chunked is not the final transfer coding")
	errTEHTTP10        = badRequest("transfer-encoding in an http/1.0 request")
	errHostMissing     = badRequest("missing host header")
	errHostMultiple    = badRequest("multiple host headers")
	errHostSyntax      = badRequest("invalid host")
	errChunkSize       = badRequest("invalid chunk size line")
	errChunkLineLong   = badRequest("chunk size line too long")
	errChunkData       = badRequest("chunk data not followed by CRLF")
	errPacket          = badRequest("packet is not one complete request")
	errHeaderTooLarge  = &Error{Status: 431, Reason: "head larger than the header limit"}
	errTooManyHeaders  = &Error{Status: 431, Reason: "too many header fields"}
	errTrailerTooLarge = &Error{Status: 431, Reason: "trailer section larger than the header limit"}
	errTooManyTrailers = &Error{Status: 431, Reason: "too many trailer fields"}
	errURITooLong      = &Error{Status: 414, Reason: "request target longer than the limit"}
	errTooLarge        = &Error{Status: 413, Reason: "request larger than the package limit"}
	errExpect          = &Error{Status: 417, Reason: "unsupported expectation"}
	errTEUnknown       = &Error{Status: 501, Reason: "unsupported transfer coding"}
	errVersion         = &Error{Status: 505, Reason: "only http/1.x is supported"}
)

// StatusText returns the reason phrase of an HTTP status code, or
// "Unknown" when the code is not one this package knows.
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 204:
		return "No Content"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Unknown"
}
