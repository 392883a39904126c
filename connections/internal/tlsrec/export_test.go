package tlsrec

// SetKeyUpdateAfter makes a write key seal n records before the next
// KeyUpdate; it returns the previous value.
func SetKeyUpdateAfter(n uint64) uint64 {
	old := keyUpdateAfter
	keyUpdateAfter = n
	return old
}
