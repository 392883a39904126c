package tlsrec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
)

// The record layer of an established TLS 1.3 session (RFC 8446 section
// 5), for the cipher suites crypto/cipher serves (AES-GCM): what kTLS
// does in the kernel, done here with the traffic secrets crypto/tls
// derived in its handshake (handed over through Config.KeyLogWriter, the
// one way crypto/tls exports them). The handshake, certificates, session
// tickets and everything before the first application record stay
// crypto/tls's; what this file does after it is the record framing, the
// AEAD (crypto/cipher's AES-GCM), and the three post-handshake messages
// a client may send: alerts, close_notify and KeyUpdate.
//
// Why: crypto/tls keeps, for the life of a connection, an input buffer
// grown to the largest record seen (up to 17 KiB), the handshake message
// buffer (the ClientHello's size), the tls.Conn itself and its
// handshake leftovers: 5.8 KB for an idle TLS 1.3 session, 23.7 KB after
// one 16 KiB record (BenchmarkIdleSession). This layer keeps its two
// AEADs, its secrets and sequence numbers (~2 KB), and nothing for input
// between records.

const (
	recordTypeAlert       = 21
	recordTypeHandshake   = 22
	recordTypeApplication = 23
	typeKeyUpdate         = 24
	maxPlaintext          = 1 << 14
	gcmTagLen             = 16
	nonceLen              = 12
)

// keyUpdateAfter is how many records a write key seals before this side
// moves to the next (a KeyUpdate): RFC 8446 5.5 allows AES-GCM 2^24.5
// full-size records under one key. Tests lower it.
var keyUpdateAfter uint64 = 1 << 24

// maxPendingCtl bounds the records of this side's own (KeyUpdate
// answers, alerts) waiting for the socket: a client that asks for key
// updates and never reads is closed rather than buffered for.
const maxPendingCtl = 16 << 10

// suiteOf returns the key length and hash of a TLS 1.3 cipher suite this
// layer serves.
func suiteOf(id uint16) (keyLen int, h func() hash.Hash, ok bool) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return 16, sha256.New, true
	case tls.TLS_AES_256_GCM_SHA384:
		return 32, sha512.New384, true
	}
	return 0, nil, false
}

// expandLabel is HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = append(info, byte(n>>8), byte(n), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// half is one direction of a session: its AEAD and where it is.
type half struct {
	aead cipher.AEAD
	seq  uint64
	// state is where aead's state starts in memory, for Prefetch: an
	// address only (Go code never reads through it, nor does it keep the
	// state alive), set with aead and never cleared.
	state uintptr
	// iv: a record's nonce is iv with seq XORed in, made in place for
	// the AEAD call and undone after it (a nonce of its own would escape
	// to the heap, or cost the session 12 bytes of scratch).
	iv     [nonceLen]byte
	secLen uint8
	secret [48]byte // this key's traffic secret, for the next (KeyUpdate)
}

// set keys h with a traffic secret of suite and restarts its sequence.
func (h *half) set(suite uint16, secret []byte) error {
	keyLen, hf, ok := suiteOf(suite)
	if !ok || len(secret) != hf().Size() {
		return errors.New("tlsrec: traffic secret does not fit the cipher suite")
	}
	key, err := expandLabel(hf, secret, "key", keyLen)
	if err != nil {
		return err
	}
	iv, err := expandLabel(hf, secret, "iv", nonceLen)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	clear(key)
	h.aead, h.seq, h.state = aead, 0, addrOf(aead)
	copy(h.iv[:], iv)
	h.secLen = uint8(copy(h.secret[:], secret))
	return nil
}

// next moves h to the next traffic secret (RFC 8446 7.2).
func (h *half) next(suite uint16) error {
	_, hf, _ := suiteOf(suite)
	secret, err := expandLabel(hf, h.secret[:h.secLen], "traffic upd", int(h.secLen))
	if err != nil {
		return err
	}
	err = h.set(suite, secret)
	clear(secret)
	return err
}

// xorSeq makes iv the nonce of record seq (the sequence number,
// big-endian, XORed into its last 8 bytes), and back again.
func (h *half) xorSeq() {
	b := h.iv[nonceLen-8:]
	binary.BigEndian.PutUint64(b, binary.BigEndian.Uint64(b)^h.seq)
}

// seal appends to dst one record of content type typ and body p (at most
// maxPlaintext bytes).
func (h *half) seal(dst []byte, typ byte, p []byte) []byte {
	n := len(p) + 1 + gcmTagLen
	start := len(dst)
	dst = append(dst, recordTypeApplication, 3, 3, byte(n>>8), byte(n))
	body := len(dst)
	dst = append(dst, p...)
	dst = append(dst, typ)
	h.xorSeq()
	dst = h.aead.Seal(dst[:body], h.iv[:], dst[body:], dst[start:body])
	h.xorSeq()
	h.seq++
	return dst
}

// open decrypts rec, a whole record, appending its inner plaintext (the
// content, its type, the padding) to dst, which may be rec[5:5].
func (h *half) open(dst, rec []byte) ([]byte, error) {
	h.xorSeq()
	pt, err := h.aead.Open(dst, h.iv[:], rec[recordHeaderLen:], rec[:recordHeaderLen])
	h.xorSeq()
	if err != nil {
		return nil, err
	}
	h.seq++
	return pt, nil
}

// rec13 is an established session's record layer once crypto/tls has
// handed it over. The loop's goroutine only.
type rec13 struct {
	suite uint16
	// owed: the client asked for a KeyUpdate; one is sent before this
	// side's next record (RFC 8446 4.6.3: several requests while this
	// side is silent are answered once).
	owed   bool
	closed bool // close_notify is sent
	in     half
	out    half
	hs     []byte // a post-handshake message begun in an earlier record
	// plain is plaintext decrypted in place that Read has not returned.
	plain []byte
	err   error // sticky: the session's input has ended (io.EOF) or failed
}

// newRec13 keys a record layer from the application traffic secrets.
func newRec13(suite uint16, clientSecret, serverSecret []byte) (*rec13, error) {
	r := &rec13{suite: suite}
	if err := r.in.set(suite, clientSecret); err != nil {
		return nil, err
	}
	if err := r.out.set(suite, serverSecret); err != nil {
		return nil, err
	}
	return r, nil
}

// alertError is an error this side ends the session with: the alert it
// sends.
type alertError struct {
	alert tls.AlertError
	what  string
}

func (e *alertError) Error() string { return "tlsrec: " + e.what + ": " + e.alert.Error() }

// remoteAlert is a fatal alert the client sent.
type remoteAlert tls.AlertError

func (e remoteAlert) Error() string { return "tlsrec: remote error: " + tls.AlertError(e).Error() }

func fail(alert uint8, what string) error {
	return &alertError{alert: tls.AlertError(alert), what: what}
}

const (
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertIllegalParameter  = 47
	alertDecodeError       = 50
	alertInternalError     = 80
	alertUserCanceled      = 90
)

// checkHeader checks a record's header as soon as it is whole: the
// client's records after its handshake are all application_data (the
// outer type of every protected record) of a legal length.
func checkHeader(h []byte) (n int, err error) {
	if h[0] != recordTypeApplication {
		return 0, fail(alertUnexpectedMessage, "record of outer type other than application_data after the handshake")
	}
	if h[1] != 3 {
		return 0, fail(alertDecodeError, "record of an unknown version")
	}
	n = int(h[3])<<8 | int(h[4])
	if n > maxPlaintext+256 {
		return 0, fail(alertRecordOverflow, "record over 2^14+256 bytes")
	}
	if n < gcmTagLen+1 {
		return 0, fail(alertBadRecordMAC, "record shorter than its tag")
	}
	return n, nil
}

// wholeRecord reports whether in begins with a whole record.
func wholeRecord(in []byte) bool {
	return len(in) >= recordHeaderLen && len(in) >= recordHeaderLen+(int(in[3])<<8|int(in[4]))
}

// inner splits a decrypted TLSInnerPlaintext into its content and type.
func inner(pt []byte) (content []byte, typ byte, err error) {
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		return nil, 0, fail(alertUnexpectedMessage, "record of padding only")
	}
	if i > maxPlaintext {
		return nil, 0, fail(alertRecordOverflow, "record's plaintext over 2^14 bytes")
	}
	return pt[:i], pt[i], nil
}

// control handles a decrypted record that is not application data (a
// requested KeyUpdate is answered when Read stops: owed).
func (r *rec13) control(typ byte, content []byte) error {
	switch typ {
	case recordTypeAlert:
		if len(content) != 2 {
			return fail(alertDecodeError, "alert record of other than two bytes")
		}
		switch content[1] {
		case alertCloseNotify:
			return io.EOF
		case alertUserCanceled:
			return nil // a close_notify follows
		}
		return remoteAlert(content[1])
	case recordTypeHandshake:
		if len(content) == 0 {
			return fail(alertUnexpectedMessage, "empty handshake record")
		}
		msg := content
		if len(r.hs) > 0 {
			r.hs = append(r.hs, content...)
			msg = r.hs
		}
		for len(msg) > 0 {
			if msg[0] != typeKeyUpdate {
				return fail(alertUnexpectedMessage, "post-handshake message other than KeyUpdate")
			}
			if len(msg) < 5 {
				if len(r.hs) == 0 {
					r.hs = append(make([]byte, 0, 5), msg...)
				}
				if len(msg) >= 4 && (msg[1] != 0 || msg[2] != 0 || msg[3] != 1) {
					return fail(alertDecodeError, "KeyUpdate of other than one byte")
				}
				return nil
			}
			if msg[1] != 0 || msg[2] != 0 || msg[3] != 1 {
				return fail(alertDecodeError, "KeyUpdate of other than one byte")
			}
			if msg[4] > 1 {
				return fail(alertIllegalParameter, "KeyUpdate's request neither 0 nor 1")
			}
			if len(msg) > 5 {
				// The key changes after it: it must end its record.
				return fail(alertUnexpectedMessage, "KeyUpdate not at the end of its record")
			}
			if msg[4] == 1 {
				r.owed = true
			}
			r.hs = nil
			if err := r.in.next(r.suite); err != nil {
				return fail(alertInternalError, err.Error())
			}
			msg = msg[5:]
		}
		return nil
	}
	return fail(alertUnexpectedMessage, "record of an unknown content type")
}

// keyUpdate appends a KeyUpdate (update_not_requested) under the
// current write key and moves to the next.
func (r *rec13) keyUpdate(dst []byte) ([]byte, error) {
	dst = r.out.seal(dst, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 0})
	r.owed = false
	return dst, r.out.next(r.suite)
}

// sealData appends p as application-data records (of at most
// maxPlaintext bytes each), after a KeyUpdate when one is owed or the
// write key has sealed its share.
func (r *rec13) sealData(dst, p []byte) ([]byte, error) {
	for first := true; first || len(p) > 0; first = false {
		if r.owed || r.out.seq >= keyUpdateAfter {
			var err error
			if dst, err = r.keyUpdate(dst); err != nil {
				return dst, err
			}
		}
		k := min(len(p), maxPlaintext)
		if k == 0 {
			return dst, nil
		}
		dst = r.out.seal(dst, recordTypeApplication, p[:k])
		p = p[k:]
	}
	return dst, nil
}

// alert appends the alert (fatal, or close_notify) of err, if it has one.
func (r *rec13) alert(dst []byte, err error) []byte {
	var ae *alertError
	switch {
	case err == nil:
		return r.out.seal(dst, recordTypeAlert, []byte{1, alertCloseNotify})
	case errors.As(err, &ae):
		return r.out.seal(dst, recordTypeAlert, []byte{2, byte(ae.alert)})
	}
	return dst
}

// drop forgets the keys; the session can neither read nor seal after it.
func (r *rec13) drop() {
	r.closed, r.err = true, net.ErrClosed
	clear(r.in.secret[:])
	clear(r.out.secret[:])
	r.in.aead, r.out.aead = nil, nil
	r.plain, r.hs = nil, nil
}

// keyLog takes a handshake's traffic secrets from crypto/tls (its
// Config.KeyLogWriter, one made for each handshake: a line per secret,
// "LABEL <client random> <secret>" in hex) and passes the lines on to
// the configuration's own writer, if it had one.
type keyLog struct {
	hs   *handshaking
	next io.Writer
}

func (k *keyLog) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) == 3 {
		var dst *[]byte
		switch string(f[0]) {
		case "CLIENT_TRAFFIC_SECRET_0":
			dst = &k.hs.clientSecret
		case "SERVER_TRAFFIC_SECRET_0":
			dst = &k.hs.serverSecret
		}
		if dst != nil {
			b := make([]byte, hex.DecodedLen(len(f[2])))
			if _, err := hex.Decode(b, f[2]); err == nil {
				*dst = b
			}
		}
	}
	if k.next != nil {
		return k.next.Write(line)
	}
	return len(line), nil
}

// readRec is Read for a session the record layer serves: records are
// decrypted straight into p when their plaintext fits, in place (in the
// input's buffer) otherwise.
func (s *Session) readRec(p []byte) (int, error) {
	r, t := s.rec, &s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for n < len(p) && r.err == nil {
		if len(r.plain) > 0 {
			k := copy(p[n:], r.plain)
			if r.plain = r.plain[k:]; len(r.plain) == 0 {
				r.plain = nil // not the buffer's array
			}
			n += k
			continue
		}
		if len(t.in) < recordHeaderLen {
			break
		}
		size, err := checkHeader(t.in)
		if err != nil {
			r.err = err
			break
		}
		if len(t.in) < recordHeaderLen+size {
			break
		}
		rec := t.in[:recordHeaderLen+size]
		t.in = t.in[recordHeaderLen+size:]
		dst := rec[recordHeaderLen:recordHeaderLen]
		direct := len(p)-n >= size-gcmTagLen
		if direct {
			dst = p[n:n]
		}
		pt, err := r.in.open(dst, rec)
		if err != nil {
			r.err = fail(alertBadRecordMAC, "record does not authenticate")
			break
		}
		content, typ, err := inner(pt)
		if err == nil && len(r.hs) > 0 && typ != recordTypeHandshake {
			err = fail(alertUnexpectedMessage, "record inside a fragmented handshake message")
		}
		if err != nil {
			r.err = err
			break
		}
		if typ != recordTypeApplication {
			r.err = r.control(typ, content)
			continue
		}
		if direct {
			n += len(content)
		} else {
			r.plain = content
		}
	}
	if len(t.in) == 0 {
		t.in, t.owned = nil, false
	}
	if n > 0 {
		return n, nil
	}
	if r.err == nil || r.err == io.EOF {
		if r.owed && !r.closed {
			if len(t.pend) > maxPendingCtl {
				r.err = fail(alertInternalError, "KeyUpdate requests unanswered, the client not reading")
			} else {
				var err error
				if t.pend, err = r.keyUpdate(t.pend); err != nil {
					r.err = fail(alertInternalError, err.Error())
				}
			}
		}
	}
	switch {
	case r.err == nil:
		// What is left is part of a record: the session's own copy, the
		// loop's buffer is lent.
		if !t.owned && len(t.in) > 0 {
			t.in, t.owned = append([]byte(nil), t.in...), true
		}
		return 0, ErrWouldBlock
	case r.err != io.EOF && !r.closed:
		// The alert, then nothing more.
		r.closed = true
		t.pend = r.alert(t.pend, r.err)
	}
	t.in, t.owned = nil, false
	return 0, r.err
}

// offloadable reports whether a client may end its handshake on a
// session this layer serves: it offers TLS 1.3 and an AES-GCM suite.
func offloadable(hi *tls.ClientHelloInfo) bool {
	v13 := false
	for _, v := range hi.SupportedVersions {
		v13 = v13 || v == tls.VersionTLS13
	}
	if !v13 {
		return false
	}
	for _, id := range hi.CipherSuites {
		if _, _, ok := suiteOf(id); ok {
			return true
		}
	}
	return false
}
