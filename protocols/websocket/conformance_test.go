package websocket_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/goes-project/goes/connections"
	ws "github.com/goes-project/goes/protocols/websocket"
)

// The conformance suite follows the sections of the Autobahn|Testsuite
// (framing, pings/pongs, reserved bits, opcodes, fragmentation, UTF-8,
// close handling, limits, compression), written from its published case
// descriptions. Every case runs against goes whole and byte by byte, and
// against a coder/websocket echo server on net/http to check that the
// expectations are what a known-good server does.

// confCase is one scripted exchange with an echo server.
type confCase struct {
	id   string
	desc string
	// offer is extra handshake header lines (compression offers).
	offer string
	// send is written frame after frame.
	send [][]byte
	// want are the events expected back, in order, before the close.
	want []event
	// fail, when set, is the set of close codes the server may fail the
	// connection with after want; nil means the connection stays open and
	// the test closes it with 1000.
	fail []int
	// noRef explains why the reference server is not asked (empty: it is).
	noRef string
}

func txt(s string) []byte            { return frame(true, 0, ws.OpText, []byte(s)) }
func bin(b []byte) []byte            { return frame(true, 0, ws.OpBinary, b) }
func ping(s string) []byte           { return frame(true, 0, ws.OpPing, []byte(s)) }
func pong(s string) []byte           { return frame(true, 0, ws.OpPong, []byte(s)) }
func cont(fin bool, s string) []byte { return frame(fin, 0, ws.OpContinuation, []byte(s)) }
func fragT(s string) []byte          { return frame(false, 0, ws.OpText, []byte(s)) }
func echoT(s string) event           { return event{Op: ws.OpText, Payload: s} }
func echoB(b []byte) event           { return event{Op: ws.OpBinary, Payload: string(b)} }
func pongE(s string) event           { return event{Op: ws.OpPong, Payload: s} }
func frames(fs ...[]byte) [][]byte   { return fs }
func events(es ...event) []event     { return es }
func repeat(s string, n int) string  { return strings.Repeat(s, n) }
func rawFrame(b0 byte, payload []byte) []byte {
	f := frame(true, 0, 0, payload)
	f[0] = b0
	return f
}

const protoErr = 1002

var errProto = []int{protoErr}

func framingCases() []confCase {
	var cs []confCase
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536} {
		s := repeat("*", n)
		cs = append(cs, confCase{id: fmt.Sprintf("1.1.%d", i+1), desc: fmt.Sprintf("text message of %d bytes", n),
			send: frames(txt(s)), want: events(echoT(s))})
		b := bytes.Repeat([]byte{0xfe}, n)
		cs = append(cs, confCase{id: fmt.Sprintf("1.2.%d", i+1), desc: fmt.Sprintf("binary message of %d bytes", n),
			send: frames(bin(b)), want: events(echoB(b))})
	}
	// 1.1.8 / 1.2.8: 65536 bytes sent in chunks of 997 bytes (one frame).
	s := repeat("*", 65536)
	f := txt(s)
	var chunks [][]byte
	for len(f) > 0 {
		n := min(997, len(f))
		chunks = append(chunks, f[:n])
		f = f[n:]
	}
	cs = append(cs, confCase{id: "1.1.8", desc: "text message of 65536 bytes written in 997-byte chunks", send: chunks, want: events(echoT(s))})
	return cs
}

func pingCases() []confCase {
	tenPings := make([][]byte, 10)
	tenPongs := make([]event, 10)
	for i := range tenPings {
		tenPings[i] = ping("payload-" + fmt.Sprint(i))
		tenPongs[i] = pongE("payload-" + fmt.Sprint(i))
	}
	return []confCase{
		{id: "2.1", desc: "ping without payload", send: frames(ping("")), want: events(pongE(""))},
		{id: "2.2", desc: "ping with a small text payload", send: frames(ping("Hello, world!")), want: events(pongE("Hello, world!"))},
		{id: "2.3", desc: "ping with a small binary payload", send: frames(frame(true, 0, ws.OpPing, []byte{0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff})), want: events(pongE("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))},
		{id: "2.4", desc: "ping with 125 bytes of binary payload", send: frames(ping(repeat("\xfe", 125))), want: events(pongE(repeat("\xfe", 125)))},
		{id: "2.5", desc: "ping with 126 bytes of payload: protocol error", send: frames(ping(repeat("\xfe", 126))), fail: errProto},
		{id: "2.7", desc: "unsolicited pong without payload is ignored", send: frames(pong(""))},
		{id: "2.8", desc: "unsolicited pong with payload is ignored", send: frames(pong("unsolicited pong payload"))},
		{id: "2.9", desc: "unsolicited pong, then ping: only the ping is answered", send: frames(pong("unsolicited"), ping("ping payload")), want: events(pongE("ping payload"))},
		{id: "2.10", desc: "10 pings in a row get 10 pongs", send: tenPings, want: tenPongs},
	}
}

func reservedBitCases() []confCase {
	return []confCase{
		{id: "3.1", desc: "text frame with RSV = 1", send: frames(frame(true, 1, ws.OpText, []byte("Hello"))), fail: errProto},
		{id: "3.2", desc: "text, then text with RSV = 2, then ping", send: frames(txt("Hello"), frame(true, 2, ws.OpText, []byte("Hello")), ping("")), want: events(echoT("Hello")), fail: errProto},
		{id: "3.3", desc: "text, then text with RSV = 3, then ping, frame by frame", send: frames(txt("Hello"), frame(true, 3, ws.OpText, []byte("Hello")), ping("")), want: events(echoT("Hello")), fail: errProto},
		{id: "3.4", desc: "text with RSV = 4 (RSV1) without an extension", send: frames(txt("Hello"), frame(true, 4, ws.OpText, []byte("Hello")), ping("")), want: events(echoT("Hello")), fail: errProto},
		{id: "3.5", desc: "binary frame with RSV = 5", send: frames(frame(true, 5, ws.OpBinary, []byte{0, 0xff, 0xfe})), fail: errProto},
		{id: "3.6", desc: "ping with RSV = 6", send: frames(frame(true, 6, ws.OpPing, []byte("Hello"))), fail: errProto},
		{id: "3.7", desc: "close with RSV = 7", send: frames(frame(true, 7, ws.OpClose, nil)), fail: errProto},
	}
}

func opcodeCases() []confCase {
	var cs []confCase
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cs = append(cs, confCase{id: fmt.Sprintf("4.1.%d", i+1), desc: fmt.Sprintf("reserved non-control opcode %d after a text message", op),
			send: frames(txt("Hello"), frame(true, 0, ws.Opcode(op), []byte("reserved")), ping("")), want: events(echoT("Hello")), fail: errProto})
	}
	for i, op := range []byte{11, 12, 13, 14, 15} {
		cs = append(cs, confCase{id: fmt.Sprintf("4.2.%d", i+1), desc: fmt.Sprintf("reserved control opcode %d after a text message", op),
			send: frames(txt("Hello"), frame(true, 0, ws.Opcode(op), []byte("reserved")), ping("")), want: events(echoT("Hello")), fail: errProto})
	}
	return cs
}

func fragmentationCases() []confCase {
	return []confCase{
		{id: "5.1", desc: "ping fragmented into 2 fragments", send: frames(frame(false, 0, ws.OpPing, []byte("frag1")), cont(true, "frag2")), fail: errProto},
		{id: "5.2", desc: "pong fragmented into 2 fragments", send: frames(frame(false, 0, ws.OpPong, []byte("frag1")), cont(true, "frag2")), fail: errProto},
		{id: "5.3", desc: "text message in 2 fragments", send: frames(fragT("frag1"), cont(true, "frag2")), want: events(echoT("frag1frag2"))},
		{id: "5.6", desc: "text message in 2 fragments with a ping in between", send: frames(fragT("frag1"), ping("ping"), cont(true, "frag2")), want: events(pongE("ping"), echoT("frag1frag2"))},
		{id: "5.9", desc: "continuation with FIN and nothing to continue, then a text message", send: frames(cont(true, "non-continuation payload"), txt("Hello")), fail: errProto},
		{id: "5.12", desc: "continuation without FIN and nothing to continue, then a text message", send: frames(cont(false, "non-continuation payload"), txt("Hello")), fail: errProto},
		{id: "5.15", desc: "text in 2 fragments, then a continuation with nothing to continue", send: frames(fragT("fragment1"), cont(true, "fragment2"), cont(false, "fragment3"), txt("fragment4")), want: events(echoT("fragment1fragment2")), fail: errProto},
		{id: "5.16", desc: "continuation first, then a fragmented text, twice", send: frames(cont(false, "fragment1"), fragT("fragment2"), cont(true, "fragment3"), cont(false, "fragment1"), fragT("fragment2"), cont(true, "fragment3")), fail: errProto},
		{id: "5.17", desc: "final continuation first, then a fragmented text, twice", send: frames(cont(true, "fragment1"), fragT("fragment2"), cont(true, "fragment3")), fail: errProto},
		{id: "5.18", desc: "text in 2 fragments, both with the text opcode", send: frames(fragT("fragment1"), txt("fragment2")), fail: errProto},
		{id: "5.19", desc: "text in 5 fragments with 2 pings in between", send: frames(fragT("fragment1"), cont(false, "fragment2"), ping("pongme 1!"), cont(false, "fragment3"), ping("pongme 2!"), cont(false, "fragment4"), cont(true, "fragment5")),
			want: events(pongE("pongme 1!"), pongE("pongme 2!"), echoT("fragment1fragment2fragment3fragment4fragment5"))},
		{id: "5.x.1", desc: "binary message in 3 fragments", send: frames(frame(false, 0, ws.OpBinary, []byte{1}), frame(false, 0, 0, []byte{2}), frame(true, 0, 0, []byte{3})), want: events(echoB([]byte{1, 2, 3}))},
		{id: "5.x.2", desc: "empty fragments around data", send: frames(fragT(""), cont(false, ""), cont(false, "x"), cont(true, "")), want: events(echoT("x"))},
	}
}

// utf8Cases covers sections 6.x: valid text must be echoed, invalid text
// must fail with 1007, whether whole or split anywhere (also inside a
// character).
func utf8Cases() []confCase {
	valid := []string{
		"", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",
		"\ud7ff", "\ue000", "\ufffd", "\ufffe", "\U0001fffe", "\U0010fffe", // noncharacters are valid UTF-8
	}
	invalid := []string{
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", // surrogate inside
		"\x80", "\xbf", "\x80\xbf\x80", "\xc0 ", "\xe0\x80", "\xf0\x80\x80", "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80",
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "\xfe", "\xff", "\xfe\xfe\xff\xff",
		"\xce\xba\xe1\xbd", // cut at the end
	}
	var cs []confCase
	for i, s := range valid {
		cs = append(cs, confCase{id: fmt.Sprintf("6.2.%d", i+1), desc: fmt.Sprintf("valid text %q", s), send: frames(txt(s)), want: events(echoT(s))})
		if len(s) > 1 {
			// Split at every byte: fragments cut characters apart.
			var fs [][]byte
			for j := 0; j < len(s); j++ {
				op, fin := ws.OpContinuation, j == len(s)-1
				if j == 0 {
					op = ws.OpText
				}
				fs = append(fs, frame(fin, 0, op, []byte{s[j]}))
			}
			cs = append(cs, confCase{id: fmt.Sprintf("6.2.%d.f", i+1), desc: fmt.Sprintf("valid text %q, one byte per fragment", s), send: fs, want: events(echoT(s))})
		}
	}
	for i, s := range invalid {
		cs = append(cs, confCase{id: fmt.Sprintf("6.3.%d", i+1), desc: fmt.Sprintf("invalid text %q", s), send: frames(txt(s)), fail: []int{1007}})
		if len(s) > 1 {
			cut := len(s) / 2
			cs = append(cs, confCase{id: fmt.Sprintf("6.3.%d.f", i+1), desc: fmt.Sprintf("invalid text %q in 2 fragments", s),
				send: frames(fragT(s[:cut]), cont(true, s[cut:])), fail: []int{1007}})
		}
	}
	// 6.4.x: fail fast: the invalid byte comes in the first fragment of a
	// message whose end never arrives; the server must not wait for it.
	cs = append(cs,
		confCase{id: "6.4.1", desc: "invalid byte in the first fragment, message never finished", send: frames(fragT("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80")), fail: []int{1007},
			noRef: "coder/websocket leaves UTF-8 to the application, which sees only whole messages"},
		confCase{id: "6.4.2", desc: "invalid continuation of a character split across fragments", send: frames(fragT("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4"), cont(false, "\x90")), fail: []int{1007},
			noRef: "coder/websocket leaves UTF-8 to the application, which sees only whole messages"},
	)
	return cs
}

func closeCases() []confCase {
	cs := []confCase{
		{id: "7.1.1", desc: "text message, then a clean close", send: frames(txt("Hello World!")), want: events(echoT("Hello World!"))},
		{id: "7.1.2", desc: "two close frames", send: frames(closeFrame(1000, ""), closeFrame(1000, "")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.1.3", desc: "ping after close gets no pong", send: frames(closeFrame(1000, ""), ping("Hello")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.1.4", desc: "text after close is not echoed", send: frames(closeFrame(1000, ""), txt("Hello")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.1.5", desc: "fragment, close, then the rest of the message", send: frames(fragT("fragment1"), closeFrame(1000, ""), cont(true, "fragment2")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.3.1", desc: "close with an empty payload", send: frames(closeFrame(0, "")), want: events(event{Op: ws.OpClose, Code: 1005}), fail: []int{},
			noRef: "coder/websocket answers an empty close with 1000 instead of an empty close; both are allowed"},
		{id: "7.3.2", desc: "close with a 1-byte payload", send: frames(frame(true, 0, ws.OpClose, []byte{0x03})), fail: errProto},
		{id: "7.3.3", desc: "close with status 1000", send: frames(closeFrame(1000, "")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.3.4", desc: "close with status 1000 and a reason", send: frames(closeFrame(1000, "Hello World!")), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.3.5", desc: "close with status 1000 and a 123-byte reason", send: frames(closeFrame(1000, repeat("*", 123))), want: events(event{Op: ws.OpClose, Code: 1000}), fail: []int{}},
		{id: "7.3.6", desc: "close with status 1000 and a 124-byte reason", send: frames(closeFrame(1000, repeat("*", 124))), fail: errProto},
		{id: "7.5.1", desc: "close with an invalid UTF-8 reason", send: frames(closeFrame(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64")), fail: []int{1007},
			noRef: "coder/websocket does not check close reasons for UTF-8"},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, confCase{id: fmt.Sprintf("7.7.%d", i+1), desc: fmt.Sprintf("close with valid code %d is echoed", code),
			send: frames(closeFrame(code, "")), want: events(event{Op: ws.OpClose, Code: code}), fail: []int{}})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, confCase{id: fmt.Sprintf("7.9.%d", i+1), desc: fmt.Sprintf("close with invalid code %d", code),
			send: frames(frame(true, 0, ws.OpClose, []byte{byte(code >> 8), byte(code)})), fail: errProto})
	}
	cs = append(cs,
		confCase{id: "7.13.1", desc: "close with code 5000", send: frames(closeFrame(5000, "")), fail: errProto},
		confCase{id: "7.13.2", desc: "close with code 65535", send: frames(closeFrame(65535, "")), fail: errProto},
	)
	return cs
}

func frameRuleCases() []confCase {
	return []confCase{
		{id: "F.1", desc: "unmasked frame from a client", send: frames(buildFrame(true, 0, ws.OpText, []byte("Hello"), false)), fail: errProto},
		{id: "F.2", desc: "close frame of 126 bytes", send: frames(rawFrame(0x88, append([]byte{3, 0xe8}, repeat("*", 124)...))), fail: errProto},
	}
}

func limitCases() []confCase {
	at := repeat("a", testLimit)
	return []confCase{
		{id: "9.1", desc: "text message at the size limit", send: frames(txt(at)), want: events(echoT(at))},
		{id: "9.2", desc: "single frame one byte over the limit", send: frames(txt(at + "a")), fail: []int{1009}},
		{id: "9.3", desc: "fragmented message over the limit", send: frames(fragT(at[:testLimit/2]), cont(false, at[:testLimit/2]), cont(true, "ab")), fail: []int{1009}},
		{id: "9.4", desc: "frame header announcing 2^63-1 bytes", send: frames([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}), fail: []int{1009, 1002},
			noRef: "coder/websocket applies its read limit only as payload bytes arrive"},
	}
}

const offerDeflate = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

func deflateCases(t testing.TB) []confCase {
	hello := []byte(repeat("Hello, compressed world! ", 20))
	z := compress(t, hello)
	half := len(z) / 2
	bomb := compress(t, make([]byte, 4*testLimit))
	return []confCase{
		{id: "12.1", desc: "compressed text message", offer: offerDeflate, send: frames(frame(true, 4, ws.OpText, z)), want: events(echoT(string(hello)))},
		{id: "12.2", desc: "compressed binary message", offer: offerDeflate, send: frames(frame(true, 4, ws.OpBinary, z)), want: events(echoB(hello))},
		{id: "12.3", desc: "compressed message in 2 fragments", offer: offerDeflate, send: frames(frame(false, 4, ws.OpText, z[:half]), frame(true, 0, 0, z[half:])), want: events(echoT(string(hello)))},
		{id: "12.4", desc: "uncompressed message on a compressed connection", offer: offerDeflate, send: frames(txt("plain")), want: events(echoT("plain"))},
		{id: "12.5", desc: "empty compressed message", offer: offerDeflate, send: frames(frame(true, 4, ws.OpText, []byte{0})), want: events(echoT(""))},
		{id: "12.6", desc: "compressed messages, then a ping between fragments", offer: offerDeflate, send: frames(frame(false, 4, ws.OpText, z[:half]), ping("p"), frame(true, 0, 0, z[half:])), want: events(pongE("p"), echoT(string(hello)))},
		{id: "13.1", desc: "RSV1 on a continuation frame", offer: offerDeflate, send: frames(frame(false, 4, ws.OpText, z[:half]), frame(true, 4, 0, z[half:])), fail: errProto},
		{id: "13.2", desc: "RSV1 on a ping", offer: offerDeflate, send: frames(frame(true, 4, ws.OpPing, nil)), fail: errProto},
		{id: "13.3", desc: "garbage compressed data", offer: offerDeflate, send: frames(frame(true, 4, ws.OpText, []byte{0xff, 0xff, 0xff, 0xff})), fail: []int{1007, 1002},
			noRef: "coder/websocket reports corrupt compressed data as an internal error (1011)"},
		{id: "13.4", desc: "decompression bomb: small frame inflating past the limit", offer: offerDeflate, send: frames(frame(true, 4, ws.OpBinary, bomb)), fail: []int{1009}},
		{id: "13.5", desc: "compressed invalid UTF-8 text", offer: offerDeflate, send: frames(frame(true, 4, ws.OpText, compress(t, []byte("\xed\xa0\x80")))), fail: []int{1007}},
	}
}

func allCases(t testing.TB) map[string][]confCase {
	return map[string][]confCase{
		"1-framing":       framingCases(),
		"2-pings":         pingCases(),
		"3-reserved-bits": reservedBitCases(),
		"4-opcodes":       opcodeCases(),
		"5-fragmentation": fragmentationCases(),
		"6-utf8":          utf8Cases(),
		"7-close":         closeCases(),
		"8-frame-rules":   frameRuleCases(),
		"9-limits":        limitCases(),
		"12-deflate":      deflateCases(t),
	}
}

// runCase plays c against the server at addr (over TLS when conf is not
// nil) and checks the outcome. ref relaxes one rule for the reference
// server: it may fail a connection by dropping it without a close frame,
// as RFC 6455 allows; goes must always say why.
func runCase(t *testing.T, addr string, conf *tls.Config, c confCase, bytewise, ref bool) {
	t.Helper()
	cl := dialRawTLS(t, addr, conf, c.offer, bytewise)
	if c.offer != "" && !cl.inflate {
		t.Fatalf("compression not negotiated: %q", cl.resp)
	}
	for _, f := range c.send {
		cl.write(f)
	}
	for i, w := range c.want {
		got := cl.next()
		if got.Op == ws.OpClose && w.Op == ws.OpClose {
			if got.Code != w.Code && got.Code != 1000 {
				t.Fatalf("event %d: got %v, want %v (or 1000)", i, got, w)
			}
			continue
		}
		if got.EOF || got.Op != w.Op || got.Payload != w.Payload {
			t.Fatalf("event %d: got %v, want %v", i, got, w)
		}
	}
	switch {
	case c.fail == nil:
		// The connection must still work: close it cleanly.
		cl.write(closeFrame(1000, ""))
		if got := cl.next(); got.Op != ws.OpClose || got.Code != 1000 {
			t.Fatalf("after the exchange: got %v, want close(1000)", got)
		}
	case len(c.fail) > 0:
		got := cl.next()
		if got.EOF && ref {
			return
		}
		if got.Op != ws.OpClose || !slices.Contains(c.fail, got.Code) {
			t.Fatalf("got %v, want close with one of %v", got, c.fail)
		}
		// Answer the close, as a client does.
		cl.write(closeFrame(got.Code, ""))
	}
	if got := cl.next(); !got.EOF {
		t.Fatalf("got %v, want the server to close the connection", got)
	}
}

// TestConformance runs every case against goes over ws and over wss (a
// TLS listener the event loops serve, as goes-master's wss:// workers
// do; bytewise, each byte in a TLS record of its own), and against the
// reference server.
func TestConformance(t *testing.T) {
	proto := func() *ws.Protocol {
		return &ws.Protocol{Compression: ws.Compression{Enabled: true, Threshold: -1}}
	}
	goes := serveGoes(t, proto(), echoHandler())
	wss, wssSrv := serveGoesTLS(t, proto(), echoHandler())
	client := &tls.Config{InsecureSkipVerify: true} // loopback, a self-signed certificate
	if runtime.GOOS == "linux" {
		// The wss cases run on the event loop, not a goroutine per connection.
		cl := dialRawTLS(t, wss, client, "", false) // answered 101: listed
		infos := wssSrv.Connections()
		if len(infos) != 1 || infos[0].Engine != connections.EngineEpoll {
			t.Fatalf("wss connections %+v, want one on %q", infos, connections.EngineEpoll)
		}
		cl.nc.Close()
	}
	ref := serveReference(t, true)
	for section, cases := range allCases(t) {
		t.Run(section, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.id, func(t *testing.T) {
					t.Run("goes", func(t *testing.T) { runCase(t, goes, nil, c, false, false) })
					t.Run("goes-bytewise", func(t *testing.T) { runCase(t, goes, nil, c, true, false) })
					t.Run("goes-wss", func(t *testing.T) { runCase(t, wss, client, c, false, false) })
					t.Run("goes-wss-bytewise", func(t *testing.T) { runCase(t, wss, client, c, true, false) })
					if c.noRef == "" {
						t.Run("reference", func(t *testing.T) { runCase(t, ref, nil, c, false, true) })
					}
				})
			}
		})
	}
}
