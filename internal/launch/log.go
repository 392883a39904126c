package launch

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns the process's logger: console lines on a terminal
// (foreground), JSON lines otherwise (daemon: stderr is the log file).
// Every line carries role and pid; workers add worker.
func NewLogger(w io.Writer, console bool, level string, role string, worker int) (zerolog.Logger, error) {
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
