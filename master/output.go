//go:build unix

package master

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
)

// maxOutputLine bounds one line of a worker's output as the master copies
// it: a longer line is passed on in pieces of this size.
const maxOutputLine = 1 << 20

// copyOutput copies p's output pipe (Options.WrapOutput) line by line to
// the master's Stderr: a JSON object line (the worker's own log) as it
// is, one write per line, and any other line (a panic's trace, a print of
// the program) as a "worker output" entry of the master's log, so that
// the log stays JSON lines. It returns at EOF: when p and whatever it
// started have closed the pipe.
func (m *master) copyOutput(p *proc) {
	defer p.out.Close()
	r := bufio.NewReaderSize(p.out, 64<<10)
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) && len(line) < maxOutputLine {
			continue
		}
		if len(line) > 0 {
			m.passLine(p, line)
			line = line[:0]
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// passLine writes one line of p's output to the master's log.
func (m *master) passLine(p *proc, line []byte) {
	text := bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(text)) == 0 {
		return
	}
	if text[0] == '{' && json.Valid(text) {
		out := append(text[:len(text):len(text)], '\n')
		m.o.Stderr.Write(out)
		return
	}
	ev := m.log.Warn()
	if bytes.HasPrefix(text, []byte("panic: ")) || bytes.HasPrefix(text, []byte("fatal error: ")) {
		ev = m.log.Error()
	}
	ev.Int("worker", p.slot.id).Int("worker_pid", p.pid).Bytes("line", text).Msg("worker output")
}
