package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"hash"
	"net"
	"sync"
)

// The floor-wss row: the floor over TLS 1.3. crypto/tls makes each
// connection's handshake (a goroutine each, session tickets off) and
// carries the WebSocket handshake and the join; then the connection's
// application traffic secret (from its Config.KeyLogWriter) keys an
// AES-GCM AEAD, and a publish seals the frame once for each member, with
// that member's key and sequence number, and writes it with write(2) as
// the floor does. The least a fan-out over TLS can do per member: one
// AEAD seal with the member's own state, one write.

// tlsConf is the server's configuration when BENCH_CERT and BENCH_KEY
// are set (nil otherwise).
func tlsConf(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}, nil
}

// sealer is one connection's server-to-client record protection.
type sealer struct {
	aead  cipher.AEAD
	iv    [12]byte
	nonce [12]byte
	seq   uint64
}

func (s *sealer) seal(dst, p []byte) []byte {
	n := len(p) + 1 + 16
	start := len(dst)
	dst = append(dst, 23, 3, 3, byte(n>>8), byte(n))
	body := len(dst)
	dst = append(dst, p...)
	dst = append(dst, 23)
	s.nonce = s.iv
	for i := 0; i < 8; i++ {
		s.nonce[11-i] ^= byte(s.seq >> (8 * i))
	}
	s.seq++
	return s.aead.Seal(dst[:body], s.nonce[:], dst[body:], dst[start:body])
}

func newSealer(suite uint16, secret []byte, seq uint64) (*sealer, error) {
	var h func() hash.Hash
	var keyLen int
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		h, keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	default:
		return nil, errors.New("floor-wss: cipher suite not AES-GCM")
	}
	label := func(l string, n int) ([]byte, error) {
		info := append([]byte{byte(n >> 8), byte(n), byte(6 + len(l))}, "tls13 "+l...)
		return hkdf.Expand(h, secret, string(append(info, 0)), n)
	}
	key, err := label("key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := label("iv", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead, seq: seq}
	copy(s.iv[:], iv)
	return s, nil
}

// keyLog keeps a connection's server application traffic secret.
type keyLog struct {
	mu     sync.Mutex
	secret []byte
}

func (k *keyLog) Write(line []byte) (int, error) {
	f := bytes.Fields(line)
	if len(f) == 3 && string(f[0]) == "SERVER_TRAFFIC_SECRET_0" {
		b := make([]byte, hex.DecodedLen(len(f[2])))
		if _, err := hex.Decode(b, f[2]); err == nil {
			k.mu.Lock()
			k.secret = b
			k.mu.Unlock()
		}
	}
	return len(line), nil
}

// recordCounter counts the TLS records written through it once counting
// is on (after the handshake: the records under the application key,
// session tickets being off).
type recordCounter struct {
	net.Conn
	on      bool
	records uint64
	left    int // bytes of the current record's body still to come
	hdr     []byte
}

func (c *recordCounter) Write(b []byte) (int, error) {
	if c.on {
		for p := b; len(p) > 0; {
			if c.left > 0 {
				k := min(c.left, len(p))
				c.left -= k
				p = p[k:]
				continue
			}
			k := min(5-len(c.hdr), len(p))
			c.hdr = append(c.hdr, p[:k]...)
			p = p[k:]
			if len(c.hdr) == 5 {
				c.left = int(c.hdr[3])<<8 | int(c.hdr[4])
				c.hdr = c.hdr[:0]
				c.records++
			}
		}
	}
	return c.Conn.Write(b)
}

// tlsServe runs c's TLS handshake and then serve; a joined member's
// sealer is keyed as the join's reply goes out.
func (s *server) tlsServe(c net.Conn, conf *tls.Config) {
	rc := &recordCounter{Conn: c}
	kl := &keyLog{}
	cc := conf.Clone()
	cc.KeyLogWriter = kl
	tc := tls.Server(rc, cc)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return
	}
	rc.on = true
	s.serveOn(tc, c, func() (*sealer, error) {
		kl.mu.Lock()
		secret := kl.secret
		kl.mu.Unlock()
		return newSealer(tc.ConnectionState().CipherSuite, secret, rc.records)
	})
}
