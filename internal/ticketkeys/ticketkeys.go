// Package ticketkeys is the TLS session ticket key set that a goes master
// shares with all its workers and hands to the next generation on reload,
// so that a client resumes its session whichever worker accepts it, and
// across a reload.
//
// A Set is at most Keep keys, the newest first: the newest encrypts new
// tickets, all decrypt (tls.Config.SetSessionTicketKeys). The master
// draws the first key at start (crypto/rand) and Rotate adds a new one on
// a schedule, dropping the oldest. Keys cross processes only through
// descriptors (a pipe, the control channel), never the environment or
// a file on disk, and never appear in logs: Set has no String form that
// shows them.
package ticketkeys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeyLen is the length of one key (what crypto/tls takes).
const KeyLen = 32

// Keep is how many keys a Set holds: the encryption key and the previous
// ones, still accepted for decryption. With the default rotation of an
// hour a ticket resumes for 2 to 3 hours at most (crypto/tls caps a
// ticket's life at 7 days anyway).
const Keep = 3

// maxEncoded bounds what Decode reads.
const maxEncoded = Keep * KeyLen

// Set is a ticket key set, the newest (encryption) key first.
type Set [][KeyLen]byte

// New returns a set of one fresh key.
func New() (Set, error) { return Set(nil).Rotate() }

// Rotate returns a new set: a fresh key first, then s's newest keys, Keep
// in all. s is not changed.
func (s Set) Rotate() (Set, error) {
	var k [KeyLen]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("ticketkeys: %w", err)
	}
	n := min(len(s), Keep-1)
	out := make(Set, 0, n+1)
	out = append(out, k)
	return append(out, s[:n]...), nil
}

// String hides the keys.
func (s Set) String() string { return fmt.Sprintf("ticketkeys.Set(%d keys)", len(s)) }

// Encode returns the keys concatenated, newest first.
func (s Set) Encode() []byte {
	b := make([]byte, 0, len(s)*KeyLen)
	for _, k := range s {
		b = append(b, k[:]...)
	}
	return b
}

// Decode parses Encode's form: 1 to Keep keys.
func Decode(b []byte) (Set, error) {
	if len(b) == 0 || len(b)%KeyLen != 0 || len(b) > maxEncoded {
		return nil, fmt.Errorf("ticketkeys: %d bytes: want 1 to %d keys of %d bytes", len(b), Keep, KeyLen)
	}
	s := make(Set, len(b)/KeyLen)
	for i := range s {
		copy(s[i][:], b[i*KeyLen:])
	}
	return s, nil
}

// File returns the read end of a new pipe that holds s (File writes it
// all and closes the write end: a set fits in a pipe's buffer), for
// ReadFile in the process it is passed to: what a master hands to a
// worker or to its successor. Read once.
func (s Set) File() (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ticketkeys: pipe: %w", err)
	}
	_, err = w.Write(s.Encode())
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("ticketkeys: pipe: %w", err)
	}
	return r, nil
}

// ReadFile reads a set from f (File's) and closes f.
func ReadFile(f *os.File) (Set, error) {
	if f == nil {
		return nil, errors.New("ticketkeys: no file")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEncoded+1))
	if err != nil {
		return nil, fmt.Errorf("ticketkeys: %w", err)
	}
	return Decode(b)
}
