// Package frame implements a length-prefixed binary protocol compatible
// with workerman's Frame protocol: every packet starts with a 4-byte
// big-endian unsigned length that counts the whole packet, header included,
// followed by the payload.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/goes-project/goes/protocols"
)

// HeaderSize is the size of the length prefix.
const HeaderSize = 4

// ErrBadLength is returned by Input when a header announces fewer than
// HeaderSize bytes.
var ErrBadLength = errors.New("frame: length shorter than its header")

// Protocol is the frame protocol. Its zero value is ready to use.
type Protocol struct{}

var _ protocols.Protocol = Protocol{}

// NewFrameProtocol returns the frame protocol, named as the seed names
// constructors (http.NewHttpProtocol).
func NewFrameProtocol() Protocol { return Protocol{} }

// New is NewFrameProtocol under the short name most callers use.
func New() Protocol { return NewFrameProtocol() }

// Name returns "frame".
func (Protocol) Name() string { return "frame" }

// Input returns the length of the first frame once its header is complete
// and the whole frame has arrived.
func (Protocol) Input(c protocols.Conn, buf []byte) (int, error) {
	if len(buf) < HeaderSize {
		return 0, nil
	}
	n := binary.BigEndian.Uint32(buf)
	if n < HeaderSize {
		return 0, fmt.Errorf("%w: %d", ErrBadLength, n)
	}
	if uint64(n) > uint64(c.MaxPackageSize()) {
		return 0, fmt.Errorf("frame: length %d over limit %d: %w", n, c.MaxPackageSize(), protocols.ErrPackageTooLarge)
	}
	if len(buf) < int(n) {
		return 0, nil
	}
	return int(n), nil
}

// Decode returns the payload of a frame.
func (Protocol) Decode(_ protocols.Conn, packet []byte) ([]byte, error) {
	return packet[HeaderSize:], nil
}

// EncodeKey implements protocols.SharedEncoder: every connection encodes
// a message alike.
func (Protocol) EncodeKey(protocols.Conn, []byte) (uint32, bool) { return 0, true }

// Encode appends the header and msg to dst.
func (Protocol) Encode(_ protocols.Conn, dst, msg []byte) ([]byte, error) {
	if uint64(len(msg))+HeaderSize > 1<<32-1 {
		return dst, fmt.Errorf("frame: message of %d bytes: %w", len(msg), protocols.ErrPackageTooLarge)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)+HeaderSize))
	return append(dst, msg...), nil
}

// PacketSize implements protocols.PacketSizer: the length in the header
// of the frame at the start of buf, so that the runtime buffers a frame in
// exactly that much memory; 0 before the header is complete or when it is
// invalid (Input reports that).
func (Protocol) PacketSize(c protocols.Conn, buf []byte) int {
	if len(buf) < HeaderSize {
		return 0
	}
	n := binary.BigEndian.Uint32(buf)
	if n < HeaderSize || uint64(n) > uint64(c.MaxPackageSize()) {
		return 0
	}
	return int(n)
}

var _ protocols.PacketSizer = Protocol{}
