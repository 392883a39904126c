package websocket

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// Opcode is the type of a WebSocket frame (RFC 6455, section 5.2).
type Opcode byte

// Frame opcodes.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// Close status codes (RFC 6455, section 7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005 // never sent: no code in a close frame
	CloseAbnormal        = 1006 // never sent: connection lost without a close frame
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseMandatoryExt    = 1010
	CloseInternalError   = 1011
	CloseServiceRestart  = 1012
	CloseTryAgainLater   = 1013
	CloseBadGateway      = 1014
	maxControlPayload    = 125
	maxFrameHeader       = 14
	finBit               = 0x80
	rsv1Bit              = 0x40
	rsv2Bit              = 0x20
	rsv3Bit              = 0x10
	maskBit              = 0x80
	opcodeMask           = 0x0f
	lengthMask           = 0x7f
	closeCodeLen         = 2
	maxCloseReason       = maxControlPayload - closeCodeLen
)

func (op Opcode) isControl() bool { return op&0x8 != 0 }

func (op Opcode) isKnown() bool {
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return true
	}
	return false
}

// header is a parsed frame header.
type header struct {
	fin    bool
	rsv    byte // the three reserved bits, in place (0x70 mask)
	op     Opcode
	masked bool
	mask   [4]byte
	length uint64 // payload length
	size   int    // header length in bytes
}

// parseHeader parses the frame header at the start of b. It returns ok ==
// false when b does not hold the whole header yet. A 64-bit length with its
// most significant bit set is reported through h.length as is; callers
// compare it with their limits.
func parseHeader(b []byte) (h header, ok bool) {
	if len(b) < 2 {
		return h, false
	}
	b0, b1 := b[0], b[1]
	h.fin = b0&finBit != 0
	h.rsv = b0 & (rsv1Bit | rsv2Bit | rsv3Bit)
	h.op = Opcode(b0 & opcodeMask)
	h.masked = b1&maskBit != 0
	n := 2
	switch l := b1 & lengthMask; l {
	case 126:
		if len(b) < 4 {
			return h, false
		}
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, false
		}
		h.length = binary.BigEndian.Uint64(b[2:])
		n = 10
	default:
		h.length = uint64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, false
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	h.size = n
	return h, true
}

// appendHeader appends a frame header for a payload of n bytes. When masked
// is true the mask key is written too.
func appendHeader(dst []byte, fin bool, rsv byte, op Opcode, n int, masked bool, key [4]byte) []byte {
	b0 := byte(op) | rsv
	if fin {
		b0 |= finBit
	}
	var b1 byte
	if masked {
		b1 = maskBit
	}
	switch {
	case n <= 125:
		dst = append(dst, b0, b1|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, b1|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if masked {
		dst = append(dst, key[:]...)
	}
	return dst
}

// appendFrame appends a whole frame carrying payload, masking it when masked
// is true.
func appendFrame(dst []byte, fin bool, rsv byte, op Opcode, payload []byte, masked bool, key [4]byte) []byte {
	dst = appendHeader(dst, fin, rsv, op, len(payload), masked, key)
	if !masked {
		return append(dst, payload...)
	}
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(key, 0, dst[start:])
	return dst
}

// maskBytes XORs b in place with the mask key, starting at key position pos
// (0..3), and returns the key position after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	if len(b) >= 16 {
		// Rotate the key so that word-sized steps start at position pos.
		k := binary.LittleEndian.Uint32(key[:])
		k = bits.RotateLeft32(k, -8*pos)
		k64 := uint64(k) | uint64(k)<<32
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^k64)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

// validCloseCode reports whether code may appear in a close frame received
// from a peer (RFC 6455, section 7.4, and the IANA registry).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// appendClose appends a close frame with code and reason (reason is cut to
// fit a control frame). code 0 sends a close frame without a body.
func appendClose(dst []byte, code int, reason string, masked bool, key [4]byte) []byte {
	if code == 0 {
		return appendHeader(dst, true, 0, OpClose, 0, masked, key)
	}
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	dst = appendHeader(dst, true, 0, OpClose, closeCodeLen+len(reason), masked, key)
	start := len(dst)
	dst = append(dst, byte(code>>8), byte(code))
	dst = append(dst, reason...)
	if masked {
		maskBytes(key, 0, dst[start:])
	}
	return dst
}
