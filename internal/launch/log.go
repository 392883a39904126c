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
	switch {
	case console:
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	case w == io.Writer(os.Stderr) && OnJournal(2):
		w = journalWriter{w}
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

// journalWriter prefixes every JSON line with the syslog priority of its
// level (<3> error, <4> warn, <6> info, <7> debug), which journald takes
// off and keeps as the entry's PRIORITY (sd-daemon(3); SyslogLevelPrefix=
// is on by default): `journalctl -p warning` then shows what it should.
// Each line is one write, as zerolog makes it.
type journalWriter struct{ w io.Writer }

func (j journalWriter) Write(p []byte) (int, error) {
	return j.WriteLevel(zerolog.NoLevel, p)
}

func (j journalWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b := make([]byte, 0, len(p)+3)
	b = append(b, '<', journalPriority(l), '>')
	b = append(b, p...)
	if _, err := j.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// journalPriority is the syslog priority digit of a zerolog level.
func journalPriority(l zerolog.Level) byte {
	switch l {
	case zerolog.PanicLevel:
		return '0' + 2 // crit
	case zerolog.FatalLevel:
		return '0' + 2
	case zerolog.ErrorLevel:
		return '0' + 3 // err
	case zerolog.WarnLevel:
		return '0' + 4 // warning
	case zerolog.DebugLevel, zerolog.TraceLevel:
		return '0' + 7 // debug
	}
	return '0' + 6 // info, and lines without a level
}

// journalText is a CLI's stdout under systemd (ExecReload's reload, an
// ExecStartPre check): each line it prints becomes a JSON log line at
// info priority, so that no plain text reaches the journal.
type journalText struct{ log zerolog.Logger }

// NewJournalText wraps w, a CLI's stdout under systemd, as a journalText.
func NewJournalText(w io.Writer) io.Writer {
	return journalText{zerolog.New(journalWriter{w}).Hook(timeHook{}).With().Str("role", "cli").Int("pid", os.Getpid()).Logger()}
}

func (j journalText) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			j.log.Info().Msg(line)
		}
	}
	return len(p), nil
}
