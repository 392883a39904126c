package goes

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// newLogger returns the process's logger: console lines on a terminal
// (foreground), JSON lines otherwise (daemon: stderr is the log file).
// Every line carries role and pid; workers add worker.
func newLogger(w io.Writer, console bool, level string, role string, worker int) (zerolog.Logger, error) {
	lvl := zerolog.InfoLevel
	if level != "" {
		var err error
		if lvl, err = zerolog.ParseLevel(strings.ToLower(level)); err != nil {
			return zerolog.Nop(), fmt.Errorf("goes: log level %q: %w", level, err)
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	ctx := zerolog.New(w).Level(lvl).Hook(timeHook{}).With().Str("role", role).Int("pid", os.Getpid())
	if worker >= 0 {
		ctx = ctx.Int("worker", worker)
	}
	return ctx.Logger(), nil
}

// timeHook stamps every line with the time to the nanosecond, without
// touching zerolog's package-level time settings.
type timeHook struct{}

func (timeHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().Format(time.RFC3339Nano))
}

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
