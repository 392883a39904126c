package websocket

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goes-project/goes/protocols"
)

// memConn is a connection in memory for fuzzing and for benchmarks of the
// codec alone; the socket tests use the real runtime.
type memConn struct {
	state      any
	max        int
	out        []byte
	closeAfter bool
	p          *Protocol
}

func (c *memConn) State() any                   { return c.state }
func (c *memConn) SetState(v any)               { c.state = v }
func (c *memConn) MaxPackageSize() int          { return c.max }
func (c *memConn) WriteRaw(b []byte) error      { c.out = append(c.out, b...); return nil }
func (c *memConn) CloseAfterFlush()             { c.closeAfter = true }
func (c *memConn) Draining() bool               { return false }
func (c *memConn) Protocol() protocols.Protocol { return c.p }

// memRuntime does what the connection runtime does with reads: buffer,
// Input until it needs more, Decode each packet.
type memRuntime struct {
	p   *Protocol
	c   *memConn
	buf []byte
	log strings.Builder
}

func newMemRuntime(t testing.TB, p *Protocol, max int, handshake string) *memRuntime {
	rt := &memRuntime{p: p, c: &memConn{max: max, p: p}}
	if handshake != "" {
		if err := rt.read([]byte(handshake)); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if !strings.HasPrefix(string(rt.c.out), "HTTP/1.1 101") {
			t.Fatalf("handshake answer %q", rt.c.out)
		}
		rt.c.out = rt.c.out[:0]
		rt.log.Reset()
	}
	return rt
}

// read delivers one read; messages are summarised in rt.log.
func (rt *memRuntime) read(b []byte) error {
	rt.buf = append(rt.buf, b...)
	off := 0
	defer func() { rt.buf = rt.buf[:copy(rt.buf, rt.buf[off:])] }()
	for off < len(rt.buf) && !rt.c.closeAfter {
		n, err := rt.p.Input(rt.c, rt.buf[off:])
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n > len(rt.buf)-off {
			return fmt.Errorf("Input returned %d with %d buffered", n, len(rt.buf)-off)
		}
		msg, err := rt.p.Decode(rt.c, rt.buf[off:off+n])
		off += n
		if errors.Is(err, protocols.ErrSkip) {
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(&rt.log, "msg op=%d len=%d sha=%x\n", MessageType(rt.c), len(msg), sha256.Sum256(msg))
	}
	return nil
}

const fuzzHandshake = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"

// feed runs data as the given reads and describes the outcome.
func feed(t *testing.T, reads [][]byte) string {
	t.Helper()
	p := &Protocol{MaxMessageSize: 4096, Compression: Compression{Enabled: true}}
	rt := newMemRuntime(t, p, 8192, fuzzHandshake)
	for _, r := range reads {
		if err := rt.read(append([]byte(nil), r...)); err != nil {
			var re *protocols.ReplyError
			reply := ""
			if errors.As(err, &re) {
				reply = fmt.Sprintf("%x", re.Reply)
			}
			// The error text names the rule, not where the split fell.
			return fmt.Sprintf("%serror %v reply %s", rt.log.String(), err, reply)
		}
	}
	return fmt.Sprintf("%sout %x closing %v left %d", rt.log.String(), rt.c.out, rt.c.closeAfter, len(rt.buf))
}

func maskedFrame(fin bool, rsv byte, op Opcode, payload []byte) []byte {
	b := appendHeader(nil, fin, rsv, op, len(payload), true, [4]byte{1, 2, 3, 4})
	start := len(b)
	b = append(b, payload...)
	maskBytes([4]byte{1, 2, 3, 4}, 0, b[start:])
	return b
}

func deflated(s string) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, 1)
	fw.Write([]byte(s))
	fw.Flush()
	return b.Bytes()[:b.Len()-4]
}

func frameSeeds() [][]byte {
	join := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	z := deflated(strings.Repeat("abc", 100))
	return [][]byte{
		maskedFrame(true, 0, OpText, []byte("hello")),
		join(maskedFrame(false, 0, OpText, []byte("κό")), maskedFrame(false, 0, OpPing, []byte("p")), maskedFrame(true, 0, OpContinuation, []byte("σμε"))),
		join(maskedFrame(true, 0, OpBinary, bytes.Repeat([]byte{7}, 300)), maskedFrame(true, 0, OpClose, []byte{3, 232, 'o', 'k'})),
		maskedFrame(true, rsv1Bit, OpText, z),
		join(maskedFrame(false, rsv1Bit, OpBinary, z[:5]), maskedFrame(true, 0, OpContinuation, z[5:])),
		maskedFrame(true, rsv1Bit, OpBinary, deflated(strings.Repeat("\x00", 10000))),
		maskedFrame(true, 0, OpText, []byte{0xed, 0xa0, 0x80}),
		maskedFrame(true, 0, Opcode(3), nil),
		appendHeader(nil, true, 0, OpText, 5, false, [4]byte{}),
		{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
	}
}

// FuzzFrames feeds a frame stream whole, split in three reads and (when
// short) a byte at a time, and requires the same messages, replies and
// error every time; nothing may panic and no message may pass the limit.
func FuzzFrames(f *testing.F) {
	for i, s := range frameSeeds() {
		f.Add(s, uint16(i*5), uint16(i*11))
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint16) {
		whole := feed(t, [][]byte{data})
		a, b := 0, 0
		if len(data) > 0 {
			a, b = int(s1)%(len(data)+1), int(s2)%(len(data)+1)
		}
		if a > b {
			a, b = b, a
		}
		if split := feed(t, [][]byte{data[:a], data[a:b], data[b:]}); split != whole {
			t.Fatalf("split at %d,%d:\n%s\nwhole:\n%s", a, b, split, whole)
		}
		if len(data) <= 256 {
			reads := make([][]byte, len(data))
			for i := range data {
				reads[i] = data[i : i+1]
			}
			if bw := feed(t, reads); bw != whole {
				t.Fatalf("byte by byte:\n%s\nwhole:\n%s", bw, whole)
			}
		}
	})
}

// FuzzUTF8 checks the incremental validator against utf8.Valid, with the
// text cut in three pieces anywhere (inside characters too).
func FuzzUTF8(f *testing.F) {
	for _, s := range []string{"", "hello", "κόσμε", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf0\x9f\x91\x8b", "a\xc0\xafb", "\xe0\xa0", "\xef\xbf\xbf"} {
		f.Add([]byte(s), uint8(1), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint8) {
		a, b := 0, 0
		if len(data) > 0 {
			a, b = int(s1)%(len(data)+1), int(s2)%(len(data)+1)
		}
		if a > b {
			a, b = b, a
		}
		var v utf8Validator
		ok := v.Write(data[:a]) && v.Write(data[a:b]) && v.Write(data[b:]) && v.Complete()
		if want := utf8.Valid(data); ok != want {
			t.Fatalf("%q split at %d,%d: validator %v, utf8.Valid %v", data, a, b, ok, want)
		}
		// Fail fast: once a prefix cannot start valid text, Write says so.
		var w utf8Validator
		for i := range data {
			if !w.Write(data[i : i+1]) {
				if utf8.Valid(data) {
					t.Fatalf("%q: byte %d refused in valid text", data, i)
				}
				break
			}
		}
	})
}

// FuzzInflate inflates arbitrary data as a message split across two
// fragments: no panic, never more than the limit, and data compressed by
// our own deflater comes back unchanged.
func FuzzInflate(f *testing.F) {
	f.Add([]byte("hello hello hello"), uint16(3), false)
	f.Add(deflated("hello"), uint16(2), true)
	f.Add([]byte{0xff, 0xff}, uint16(1), true)
	f.Add(deflated(strings.Repeat("\x00", 100000)), uint16(4), true)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, raw bool) {
		const limit = 4096
		out, err := inflateBounded(nil, data, nil, limit)
		if len(out) > limit+1 {
			t.Fatalf("inflated %d bytes past the limit %d", len(out), limit)
		}
		if err == nil && len(out) > limit {
			t.Fatalf("no error for %d bytes over the limit", len(out))
		}
		z := data
		if !raw {
			p := &Protocol{Compression: Compression{Enabled: true, Threshold: -1}}
			st := &connState{p: p, dfl: deflateParams{enabled: true, ownNoCtx: true, ownBits: 15, peerBits: 15}}
			st.flags.Store(flagOpen | flagBinary)
			fr, err := p.appendCompressed(st, nil, OpBinary, data)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := parseHeader(fr)
			z = fr[h.size:]
		}
		c := int(cut) % (len(z) + 1)
		p := &Protocol{MaxMessageSize: 1 << 20, Compression: Compression{Enabled: true}}
		rt := newMemRuntime(t, p, 2<<20, fuzzHandshake)
		stream := append(maskedFrame(false, rsv1Bit, OpBinary, z[:c]), maskedFrame(true, 0, OpContinuation, z[c:])...)
		err = rt.read(stream)
		if !raw {
			if err != nil {
				t.Fatalf("own compressed data refused: %v", err)
			}
			want := fmt.Sprintf("msg op=%d len=%d sha=%x\n", OpBinary, len(data), sha256.Sum256(data))
			if rt.log.String() != want {
				t.Fatalf("round trip: got %q want %q", rt.log.String(), want)
			}
		}
	})
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for n := 0; n < 40; n++ {
		for pos := 0; pos < 4; pos++ {
			b := bytes.Repeat([]byte{0xaa}, n)
			want := make([]byte, n)
			for i := range want {
				want[i] = 0xaa ^ key[(pos+i)%4]
			}
			if end := maskBytes(key, pos, b); end != (pos+n)%4 || !bytes.Equal(b, want) {
				t.Fatalf("n=%d pos=%d: got %x end %d, want %x", n, pos, b, end, want)
			}
		}
	}
}

func TestAppendWindow(t *testing.T) {
	var w []byte
	w = appendWindow(w, []byte("abcdef"), 4)
	if string(w) != "cdef" {
		t.Fatalf("got %q", w)
	}
	w = appendWindow(w, []byte("gh"), 4)
	if string(w) != "efgh" {
		t.Fatalf("got %q", w)
	}
	w = appendWindow(w, []byte("i"), 4)
	if string(w) != "fghi" {
		t.Fatalf("got %q", w)
	}
}
