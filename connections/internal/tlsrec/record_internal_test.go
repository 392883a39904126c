package tlsrec

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"testing"
)

// peer is the client's end of a record layer under test: it seals what
// the session reads and opens what the session writes.
type peer struct {
	suite   uint16
	out, in half
}

func newPair(t testing.TB, suite uint16) (*Session, *peer) {
	t.Helper()
	_, hf, _ := suiteOf(suite)
	cs := bytes.Repeat([]byte{1}, hf().Size())
	ss := bytes.Repeat([]byte{2}, hf().Size())
	r, err := newRec13(suite, cs, ss)
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{rec: r}
	s.t.phase = phaseUp
	p := &peer{suite: suite}
	if err := p.out.set(suite, cs); err != nil {
		t.Fatal(err)
	}
	if err := p.in.set(suite, ss); err != nil {
		t.Fatal(err)
	}
	return s, p
}

// seal appends a record of content type typ and body b.
func (p *peer) seal(dst []byte, typ byte, b []byte) []byte {
	return p.out.seal(dst, typ, b)
}

// sealPadded is seal with pad zero bytes of padding after the content
// type (half.seal puts the type last).
func (p *peer) sealPadded(dst []byte, typ byte, b []byte, pad int) []byte {
	if pad == 0 {
		return p.out.seal(dst, typ, b)
	}
	// The inner plaintext is b, typ, zeros: seal b+typ+zeros[:pad-1]
	// with a last zero as the "type" byte half.seal appends.
	body := append(append(append([]byte(nil), b...), typ), make([]byte, pad-1)...)
	return p.out.seal(dst, 0, body)
}

// open returns the records of b the session wrote: content types and
// bodies.
func (p *peer) open(t testing.TB, b []byte) (types []byte, bodies [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if !wholeRecord(b) {
			t.Fatalf("the session wrote part of a record: % x", b)
		}
		n := recordHeaderLen + (int(b[3])<<8 | int(b[4]))
		pt, err := p.in.open(nil, b[:n])
		if err != nil {
			t.Fatalf("the session's record %d does not open under the client's read key", p.in.seq)
		}
		content, typ, err := inner(pt)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
		bodies = append(bodies, content)
		b = b[n:]
		if typ == recordTypeHandshake && bytes.Equal(content, []byte{typeKeyUpdate, 0, 0, 1, 0}) {
			if err := p.in.next(p.suite); err != nil { // the session's next key
				t.Fatal(err)
			}
		}
	}
	return types, bodies
}

// readAll reads the session with buffers of size n until it would block
// or ends.
func readAll(t testing.TB, s *Session, n int) ([]byte, error) {
	var got []byte
	p := make([]byte, n)
	for i := 0; ; i++ {
		k, err := s.Read(p)
		got = append(got, p[:k]...)
		if err != nil {
			return got, err
		}
		if i > 1<<20 {
			t.Fatal("Read returns data forever")
		}
	}
}

// FuzzRecords drives the record layer with records a client sealed under
// the right keys, so that the fuzzer gets past the AEAD to the content
// types, padding, alerts and KeyUpdates (whole, requested, split across
// records, misplaced) and with raw bytes between them. The session must
// never panic, must deliver only the application data sealed (in
// order), all of it when every record was valid, and must answer a
// requested KeyUpdate under keys the client follows.
func FuzzRecords(f *testing.F) {
	f.Add([]byte{0, 5, 'h', 'e', 'l', 'l', 'o'}, uint16(100))
	f.Add([]byte{6 | 8, 0, 5, 'a', 'b', 'c', 'd', 'e'}, uint16(3))
	f.Add([]byte{7, 0, 5, 0, 1, 'x'}, uint16(17000))
	f.Add([]byte{5, 3, 'a', 'b', 'c', 200}, uint16(1))
	f.Add([]byte{1, 2, 1, 0, 0, 1, 'z'}, uint16(64))
	f.Add([]byte{3, 5, 23, 3, 3, 0, 40}, uint16(64))
	f.Fuzz(func(t *testing.T, data []byte, readSize uint16) {
		suite := uint16(tls.TLS_AES_128_GCM_SHA256)
		if readSize&1 == 1 {
			suite = tls.TLS_AES_256_GCM_SHA384
		}
		s, p := newPair(t, suite)
		var wire, want []byte
		valid, requested, closed := true, false, false
		next := func() (b byte) {
			if len(data) > 0 {
				b, data = data[0], data[1:]
			}
			return b
		}
		body := func() []byte {
			n := int(next())
			if n > len(data) {
				n = len(data)
			}
			b := data[:n]
			data = data[n:]
			return b
		}
		for len(data) > 0 && !closed {
			op := next()
			switch op & 7 {
			case 0: // application data
				b := body()
				wire = p.seal(wire, recordTypeApplication, b)
				if valid {
					want = append(want, b...)
				}
			case 5: // application data, padded
				pad := int(next())
				b := body()
				wire = p.sealPadded(wire, recordTypeApplication, b, pad)
				if valid {
					want = append(want, b...)
				}
			case 1: // an alert
				b := body()
				wire = p.seal(wire, recordTypeAlert, b)
				if len(b) == 2 && b[1] == alertCloseNotify {
					closed = true
				} else if !(len(b) == 2 && b[1] == alertUserCanceled) {
					valid = false
				}
			case 2: // a handshake record, as it is
				b := body()
				wire = p.seal(wire, recordTypeHandshake, b)
				valid = false
			case 3: // raw bytes
				wire = append(wire, body()...)
				valid = false
			case 4: // another content type
				wire = p.seal(wire, op>>3, body())
				valid = false
			case 6: // a KeyUpdate
				req := (op >> 3) & 1
				wire = p.seal(wire, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, req})
				if err := p.out.next(suite); err != nil {
					t.Fatal(err)
				}
				requested = requested || req == 1
			case 7: // a KeyUpdate split across two records
				k := int(next()%4) + 1
				msg := []byte{typeKeyUpdate, 0, 0, 1, 0}
				wire = p.seal(wire, recordTypeHandshake, msg[:k])
				wire = p.seal(wire, recordTypeHandshake, msg[k:])
				if err := p.out.next(suite); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Two pieces, the second lent after the first would block.
		half := len(wire) / 2
		s.Open(wire[:half])
		got, err := readAll(t, s, int(readSize%20000)+1)
		if errors.Is(err, ErrWouldBlock) {
			s.Open(wire[half:])
			var more []byte
			more, err = readAll(t, s, int(readSize%20000)+1)
			got = append(got, more...)
		}
		if !bytes.HasPrefix(want, got) && !(!valid && bytes.HasPrefix(got, want)) {
			// Valid records deliver what was sealed; past an invalid one
			// nothing more (the session stops at it).
			t.Fatalf("delivered %q, sealed %q", got, want)
		}
		if valid {
			if !bytes.Equal(got, want) {
				t.Fatalf("delivered %d bytes of %d", len(got), len(want))
			}
			switch {
			case closed && err != io.EOF:
				t.Fatalf("after close_notify: %v, want io.EOF", err)
			case !closed && !errors.Is(err, ErrWouldBlock):
				t.Fatalf("valid records: %v", err)
			}
			// A requested KeyUpdate is answered: once for the requests
			// read before Read would block (here the input comes in two
			// pieces, so once or twice), with a KeyUpdate that asks for
			// nothing.
			types, bodies := p.open(t, s.Pending(nil))
			switch {
			case requested: // (before a close_notify: nothing is read after it)
				if len(types) == 0 || len(types) > 2 {
					t.Fatalf("%d answers to requested KeyUpdates", len(types))
				}
				for i := range types {
					if types[i] != recordTypeHandshake || !bytes.Equal(bodies[i], []byte{typeKeyUpdate, 0, 0, 1, 0}) {
						t.Fatalf("answer to a requested KeyUpdate: type %d % x", types[i], bodies[i])
					}
				}
			case len(types) != 0:
				t.Fatalf("the session wrote records of types %v unasked", types)
			}
			// Both sides go on under their current keys.
			if !closed {
				out, err := s.Seal(nil, []byte("after"))
				if err != nil {
					t.Fatal(err)
				}
				if _, bodies := p.open(t, out); len(bodies) != 1 || string(bodies[0]) != "after" {
					t.Fatalf("the session's next record: %q", bodies)
				}
			}
		}
		s.Close()
	})
}

// TestRecordLimits: a record over the size limit, of the wrong outer
// type or too short for its tag is refused as soon as its header is in,
// with the alert RFC 8446 names.
func TestRecordLimits(t *testing.T) {
	for _, c := range []struct {
		name  string
		hdr   []byte
		alert uint8
	}{
		{"overflow", []byte{23, 3, 3, 0x41, 0x01}, alertRecordOverflow},
		{"handshake outer type", []byte{22, 3, 3, 0, 40}, alertUnexpectedMessage},
		{"change_cipher_spec", []byte{20, 3, 3, 0, 1}, alertUnexpectedMessage},
		{"shorter than its tag", []byte{23, 3, 3, 0, 16}, alertBadRecordMAC},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, p := newPair(t, tls.TLS_AES_128_GCM_SHA256)
			s.Open(c.hdr)
			_, err := s.Read(make([]byte, 100))
			var ae *alertError
			if !errors.As(err, &ae) || uint8(ae.alert) != c.alert {
				t.Fatalf("got %v, want alert %d", err, c.alert)
			}
			types, bodies := p.open(t, s.Pending(nil))
			if len(types) != 1 || types[0] != recordTypeAlert || !bytes.Equal(bodies[0], []byte{2, c.alert}) {
				t.Fatalf("the session wrote %v %q, want the fatal alert %d", types, bodies, c.alert)
			}
		})
	}
}

// TestClosedSession: after Close a handed-over session neither reads
// nor seals (its keys are gone), and says so rather than failing.
func TestClosedSession(t *testing.T) {
	s, p := newPair(t, tls.TLS_AES_128_GCM_SHA256)
	s.Close()
	if _, err := s.Seal(nil, []byte("x")); err == nil {
		t.Fatal("Seal after Close succeeded")
	}
	s.Open(p.seal(nil, recordTypeApplication, []byte("x")))
	if _, err := s.Read(make([]byte, 10)); err == nil || errors.Is(err, ErrWouldBlock) {
		t.Fatalf("Read after Close: %v, want an error", err)
	}
}
