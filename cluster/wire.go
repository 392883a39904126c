package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Wire format. Every NATS message of a Node starts with an op byte.
//
//	route subject  <prefix>.c.<route> (one per Node, route in decimal)
//	  opSend   [op][id u64][data]                  to one connection
//	  opClose  [op][id u64]                        close one connection
//	  opOnline [op][id u64]       request, reply [0|1]
//	  opPing   [op]               request, reply [1] (is this route taken?)
//	  opBeat   [op][member]                        a peer's answer to opHello
//	topic subjects <prefix>.u.<token> (a user), <prefix>.g.<token> (a group)
//	  opSend   [op][n uvarint][n × id u64][data]   n excluded connections
//	all subject <prefix>.all (every Node)
//	  opSend   [op][n uvarint][n × id u64][data]   broadcast
//	  opHello  [op][member]       a Node joined; as a request at start, the
//	                              peers reply opBeat to it, else to its route
//	  opBeat   [op][member]                        periodic heartbeat
//	  opBye    [op][member]                        a Node leaves
//	  opCount  [op][route u32][topic subject]      request, reply [route u32][count uvarint]
//
// A member is [route u32][known u32][name]: known is the number of Nodes
// the sender knows that have joined (listen on the all subject), itself
// included, the Node it answers excluded. A joining Node sends its hello as
// a request twice, just before and just after it subscribes to the all
// subject (see Node.join); once it knows the others it announces itself
// with a plain hello, and counts as joined from then on.
// Integers are big-endian. An empty topic subject in opCount counts every
// connection of the Node.
const (
	opSend byte = iota + 1
	opClose
	opOnline
	opPing
	opHello
	opBeat
	opBye
	opCount
)

// errMalformed is a message this package did not write (another
// application on the same prefix, a newer version). It is dropped.
var errMalformed = errors.New("cluster: malformed message")

// maxExclude bounds the excluded ids of one message (8 bytes each).
const maxExclude = 1 << 16

// appendIDs appends the excluded-id list of a topic or broadcast message.
func appendIDs(b []byte, ids []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return b
}

// parseExcluded splits the body of a topic or broadcast opSend (after the
// op byte) into the excluded ids, still encoded, and the data.
func parseExcluded(b []byte) (ids []byte, data []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxExclude || uint64(len(b)-k) < n*8 {
		return nil, nil, errMalformed
	}
	b = b[k:]
	return b[:n*8], b[n*8:], nil
}

// excluded reports whether id is in an encoded id list.
func excluded(ids []byte, id uint64) bool {
	for i := 0; i+8 <= len(ids); i += 8 {
		if binary.BigEndian.Uint64(ids[i:]) == id {
			return true
		}
	}
	return false
}

// appendMember appends a member: route, known Nodes, name.
func appendMember(b []byte, route, known uint32, name string) []byte {
	b = binary.BigEndian.AppendUint32(b, route)
	b = binary.BigEndian.AppendUint32(b, known)
	return append(b, name...)
}

// parseMember splits the body of opHello, opBeat, opBye (after the op byte).
func parseMember(b []byte) (route, known uint32, name string, err error) {
	if len(b) < 8 {
		return 0, 0, "", errMalformed
	}
	return binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), string(b[8:]), nil
}

// parseCountReply parses an opCount reply.
func parseCountReply(b []byte) (route uint32, count int, err error) {
	if len(b) < 5 {
		return 0, 0, errMalformed
	}
	n, k := binary.Uvarint(b[4:])
	if k <= 0 || k != len(b)-4 || n > 1<<62 {
		return 0, 0, errMalformed
	}
	return binary.BigEndian.Uint32(b), int(n), nil
}

// maxName bounds a user id or group name in bytes.
const maxName = 256

// Name errors.
var (
	// ErrEmptyName: a user id or group name is empty.
	ErrEmptyName = errors.New("cluster: empty user id or group name")
	// ErrNameTooLong: a user id or group name is longer than 256 bytes.
	ErrNameTooLong = errors.New("cluster: user id or group name longer than 256 bytes")
)

// token turns a user id or group name into one NATS subject token. Names of
// letters, digits, '-' and '_' (up to 64 bytes) stay readable; any other
// name becomes '~' followed by its unpadded base64url encoding, so distinct
// names always give distinct tokens and no name can inject '.', '*', '>' or
// spaces into a subject.
func token(name string) (string, error) {
	if name == "" {
		return "", ErrEmptyName
	}
	if len(name) > maxName {
		return "", ErrNameTooLong
	}
	if len(name) <= 64 && plainToken(name) {
		return name, nil
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(name)), nil
}

func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validPrefix reports whether p is a usable subject prefix: dot-separated
// non-empty tokens of letters, digits, '-' and '_'.
// RedactURL returns a list of NATS URLs (comma separated, as NodeOptions.URL)
// with their credentials replaced by "redacted", for logs and status.
func RedactURL(urls string) string {
	list := strings.Split(urls, ",")
	for i, s := range list {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			list[i] = u.String()
		}
	}
	return strings.Join(list, ",")
}

// CheckPrefix returns an error wrapping ErrBadPrefix unless p is a valid
// NodeOptions.Prefix: dot-separated tokens of letters, digits, '-' and '_'.
func CheckPrefix(p string) error {
	if !validPrefix(p) {
		return fmt.Errorf("%w %q", ErrBadPrefix, p)
	}
	return nil
}

func validPrefix(p string) bool {
	if p == "" {
		return false
	}
	for _, t := range strings.Split(p, ".") {
		if t == "" || !plainToken(t) {
			return false
		}
	}
	return true
}

// routeSubject is the subject of the Node whose connection ids have route
// (the high 32 bits) r: "<prefix>.c.<route>".
func routeSubject(prefix string, r uint32) string {
	b := make([]byte, 0, len(prefix)+13)
	b = append(b, prefix...)
	b = append(b, ".c."...)
	b = strconv.AppendUint(b, uint64(r), 10)
	return string(b)
}
