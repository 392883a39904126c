// Package wire is what the fan-out benchmark's programs share: WebSocket
// frames (RFC 6455) written and parsed by hand, the accept key, and the
// benchmark's message, which carries a sequence number and the publisher's
// send time.
//
// The protocol between the benchmark clients and every broadcast server but
// centrifuge's: text frames; a client sends "join" and is answered "ok";
// the publisher sends "publish <payload>" and the server delivers <payload>
// as one text frame to every joined connection.
package wire

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
)

// Opcodes used here.
const (
	OpText  = 0x1
	OpClose = 0x8
	OpPing  = 0x9
	OpPong  = 0xA
)

// Commands of the benchmark protocol.
const (
	Join    = "join"
	OK      = "ok"
	Publish = "publish "
)

// AppendFrame appends one final frame with opcode op and payload p to dst,
// masked with a fixed key when mask is true (a client's frame).
func AppendFrame(dst []byte, op byte, p []byte, mask bool) []byte {
	dst = append(dst, 0x80|op)
	var mbit byte
	if mask {
		mbit = 0x80
	}
	switch n := len(p); {
	case n < 126:
		dst = append(dst, mbit|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, mbit|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, mbit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !mask {
		return append(dst, p...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, p...)
	for i := range p {
		dst[start+i] ^= key[i&3]
	}
	return dst
}

// ErrFrame is a frame this package does not accept (fragmented, reserved
// bits, oversized).
var ErrFrame = errors.New("wire: unsupported frame")

// ParseFrame parses the frame at the start of b. It returns n == 0 when b
// holds less than a whole frame. A masked payload is unmasked in place.
func ParseFrame(b []byte) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, nil
	}
	if b[0]&0x70 != 0 || b[0]&0x80 == 0 {
		return 0, nil, 0, ErrFrame
	}
	op = b[0] & 0x0F
	masked := b[1]&0x80 != 0
	size := int(b[1] & 0x7F)
	h := 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, nil
		}
		size, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v > 1<<24 {
			return 0, nil, 0, ErrFrame
		}
		size, h = int(v), 10
	}
	var key []byte
	if masked {
		if len(b) < h+4 {
			return 0, nil, 0, nil
		}
		key = b[h : h+4]
		h += 4
	}
	if len(b) < h+size {
		return 0, nil, 0, nil
	}
	payload = b[h : h+size]
	if masked {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return op, payload, h + size, nil
}

// AcceptKey is the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// ClientKey is the fixed Sec-WebSocket-Key the benchmark clients send.
const ClientKey = "ZmFub3V0LWJlbmNoLWtleQ=="

// UpgradeRequest is a client's opening handshake for path on host.
func UpgradeRequest(host, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + ClientKey +
		"\r\nSec-WebSocket-Version: 13\r\nOrigin: http://" + host + "\r\n\r\n")
}

// CheckUpgradeResponse checks a server's answer head (up to and including
// the blank line) to UpgradeRequest.
func CheckUpgradeResponse(head []byte) error {
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		line, _, _ := bytes.Cut(head, []byte("\r\n"))
		return errors.New("wire: handshake refused: " + string(line))
	}
	if !bytes.Contains(head, []byte(AcceptKey(ClientKey))) {
		return errors.New("wire: handshake: wrong Sec-WebSocket-Accept")
	}
	return nil
}

// Marker starts every benchmark message: "fanout <seq> <unix ns> <pad>".
const Marker = "fanout "

// Message returns the benchmark message number seq sent at ns, padded with
// 'x' to size bytes (longer when size is too small).
func Message(seq int, ns int64, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, Marker...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ns, 10)
	b = append(b, ' ')
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// Scan calls fn for every benchmark message found in p (a frame payload
// may carry several, e.g. centrifuge's newline-separated JSON pushes).
func Scan(p []byte, fn func(seq int, ns int64)) {
	for {
		i := bytes.Index(p, []byte(Marker))
		if i < 0 {
			return
		}
		p = p[i+len(Marker):]
		seq, rest, ok := number(p)
		if !ok || len(rest) == 0 || rest[0] != ' ' {
			continue
		}
		ns, rest, ok := number(rest[1:])
		if !ok {
			continue
		}
		fn(int(seq), ns)
		p = rest
	}
}

func number(b []byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	return v, b[i:], i > 0
}
