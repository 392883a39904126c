//go:build !unix

package launch

// OnJournal reports false: journald is Linux's.
func OnJournal(fd int) bool { return false }
