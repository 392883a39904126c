package websocket

import "unicode/utf8"

// utf8Validator checks UTF-8 text that arrives in pieces (the fragments of
// a message): Write takes each piece as it comes and reports an error as
// soon as a byte makes the text invalid, whatever the split; Complete
// reports whether the text seen so far ends on a character boundary. The
// zero value is ready for a new text. Not safe for concurrent use.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected in the current character
	lo, hi byte  // bounds of the next continuation byte
}

// reset prepares v for a new text.
func (v *utf8Validator) reset() { *v = utf8Validator{} }

// Complete reports whether no character is cut at the end of the text so far.
func (v *utf8Validator) Complete() bool { return v.need == 0 }

// Write validates the next piece of the text and reports whether the text
// is still valid (a character may continue in the next piece).
func (v *utf8Validator) Write(p []byte) bool {
	// Finish a character carried over from the previous piece.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		c := p[0]
		if c < v.lo || c > v.hi {
			return false
		}
		p = p[1:]
		v.need--
		v.lo, v.hi = 0x80, 0xbf
	}
	// Find where the last character starts; everything before it is whole.
	tail := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			tail = i
			break
		}
	}
	if tail < len(p) && p[tail] < utf8.RuneSelf {
		tail = len(p) // ASCII ends the piece: nothing is cut
	} else if tail < len(p) && utf8.FullRune(p[tail:]) {
		tail = len(p)
	}
	if !utf8.Valid(p[:tail]) {
		return false
	}
	// p[tail:] is at most one incomplete character (or garbage): step
	// through it byte by byte.
	for _, c := range p[tail:] {
		if !v.step(c) {
			return false
		}
	}
	return true
}

// step feeds one byte through the character state machine (RFC 3629, section 4).
func (v *utf8Validator) step(c byte) bool {
	if v.need > 0 {
		if c < v.lo || c > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xbf
		return true
	}
	v.lo, v.hi = 0x80, 0xbf
	switch {
	case c < 0x80:
		return true
	case c >= 0xc2 && c <= 0xdf:
		v.need = 1
	case c == 0xe0:
		v.need, v.lo = 2, 0xa0 // no overlong forms
	case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
		v.need = 2
	case c == 0xed:
		v.need, v.hi = 2, 0x9f // no surrogates
	case c == 0xf0:
		v.need, v.lo = 3, 0x90 // no overlong forms
	case c >= 0xf1 && c <= 0xf3:
		v.need = 3
	case c == 0xf4:
		v.need, v.hi = 3, 0x8f // nothing above U+10FFFF
	default:
		return false
	}
	return true
}
