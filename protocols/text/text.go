// Package text implements a newline-framed text protocol: every packet is
// one line ending in "\n" (a preceding "\r" is dropped too). Messages are
// the line without its ending; Encode appends "\n".
package text

import (
	"bytes"
	"errors"

	"github.com/goes-project/goes/protocols"
)

// ErrLineTooLong is returned by Input when no newline arrives within the
// connection's MaxPackageSize bytes.
var ErrLineTooLong = errors.New("text: line too long")

// Protocol is the text protocol. Its zero value is ready to use.
type Protocol struct{}

var _ protocols.Protocol = Protocol{}

// NewTextProtocol returns the text protocol, named as the seed names
// constructors (http.NewHttpProtocol).
func NewTextProtocol() Protocol { return Protocol{} }

// New is NewTextProtocol under the short name most callers use.
func New() Protocol { return NewTextProtocol() }

// Name returns "text".
func (Protocol) Name() string { return "text" }

// Input returns the length of the first line in buf, newline included.
func (Protocol) Input(c protocols.Conn, buf []byte) (int, error) {
	max := c.MaxPackageSize()
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if len(buf) >= max {
			return 0, errors.Join(ErrLineTooLong, protocols.ErrPackageTooLarge)
		}
		return 0, nil
	}
	if i+1 > max {
		return 0, errors.Join(ErrLineTooLong, protocols.ErrPackageTooLarge)
	}
	return i + 1, nil
}

// Decode strips the line ending.
func (Protocol) Decode(_ protocols.Conn, packet []byte) ([]byte, error) {
	packet = bytes.TrimSuffix(packet, []byte{'\n'})
	return bytes.TrimSuffix(packet, []byte{'\r'}), nil
}

// EncodeKey implements protocols.SharedEncoder: every connection encodes
// a message alike.
func (Protocol) EncodeKey(protocols.Conn, []byte) (uint32, bool) { return 0, true }

// Encode appends msg and a newline to dst.
func (Protocol) Encode(_ protocols.Conn, dst, msg []byte) ([]byte, error) {
	dst = append(dst, msg...)
	return append(dst, '\n'), nil
}
