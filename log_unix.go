//go:build unix

package goes

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// reopenLog points stdout and stderr at a freshly opened path (after
// logrotate moved the old file away).
func reopenLog(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("goes: reopen log: %w", err)
	}
	defer f.Close()
	for _, fd := range []int{1, 2} {
		if err := unix.Dup2(int(f.Fd()), fd); err != nil {
			return fmt.Errorf("goes: reopen log: %w", err)
		}
	}
	return nil
}

// onJournal reports whether fd is the journald stream systemd gave this
// process (JOURNAL_STREAM=DEV:INODE names it; a process whose output was
// redirected elsewhere since, or a child that inherited the variable
// with another stderr, does not match).
func onJournal(fd int) bool {
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
