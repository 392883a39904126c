//go:build unix

package launch

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OnJournal reports whether fd is the journald stream systemd gave this
// process (JOURNAL_STREAM=DEV:INODE names it; a process whose output was
// redirected elsewhere since, or a child that inherited the variable
// with another stderr, does not match).
func OnJournal(fd int) bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	return v == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
