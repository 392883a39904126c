package worker

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"time"

	"github.com/goes-project/goes/ipc"
)

const (
	// profileChunk is the most bytes of a profile one answer carries: a
	// control frame holds at most ipc.MaxPayload, and base64 takes 4/3.
	profileChunk = 4 << 20
	// maxProfileTime bounds a CPU profile or trace.
	maxProfileTime = 10 * time.Minute
	// profileKeep is how long an unread profile is kept for the master.
	profileKeep = time.Minute
	// maxHeld is how many unread profiles are kept at once.
	maxHeld = 4
)

// profiles holds the profiles a worker has taken until the master has
// read them, chunk by chunk. Safe for concurrent use.
type profiles struct {
	mu   sync.Mutex
	next uint64
	held map[uint64]*heldProfile
}

type heldProfile struct {
	b  []byte
	at time.Time
}

// serve answers a profile or profile_read request. It runs on a goroutine
// of its own: a CPU profile or a trace takes its duration, during which
// the worker's control loop answers everything else. A profile running
// when stop is closed ends with an error.
func (ps *profiles) serve(ctl *ipc.Conn, m ipc.Message, stop <-chan struct{}) {
	var (
		chunk ipc.ProfileChunk
		err   error
	)
	if m.Type == ipc.TypeProfile {
		var req ipc.ProfileRequest
		if err = m.Decode(&req); err == nil {
			var b []byte
			if b, err = takeProfile(req, stop); err == nil {
				chunk = ps.hold(b)
			}
		}
	} else {
		var req ipc.ProfileRead
		if err = m.Decode(&req); err == nil {
			chunk, err = ps.read(req)
		}
	}
	reply(ctl, m, chunk, err)
}

// hold keeps b for reading and returns its first chunk.
func (ps *profiles) hold(b []byte) ipc.ProfileChunk {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(b) <= profileChunk {
		return ipc.ProfileChunk{Data: b, Total: len(b)}
	}
	if ps.held == nil {
		ps.held = make(map[uint64]*heldProfile)
	}
	now := time.Now()
	var oldest uint64
	for h, p := range ps.held {
		if now.Sub(p.at) > profileKeep {
			delete(ps.held, h)
		} else if oldest == 0 || h < oldest {
			oldest = h
		}
	}
	if len(ps.held) >= maxHeld {
		delete(ps.held, oldest)
	}
	ps.next++
	ps.held[ps.next] = &heldProfile{b: b, at: now}
	return ipc.ProfileChunk{Data: b[:profileChunk], Total: len(b), More: true, Handle: ps.next}
}

// read returns the chunk of a held profile at r.Offset; the profile is
// dropped once its last chunk is read.
func (ps *profiles) read(r ipc.ProfileRead) (ipc.ProfileChunk, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.held[r.Handle]
	if p == nil {
		return ipc.ProfileChunk{}, fmt.Errorf("worker: profile %d is gone (unread for %s, or replaced)", r.Handle, profileKeep)
	}
	if r.Offset < 0 || r.Offset > len(p.b) {
		return ipc.ProfileChunk{}, fmt.Errorf("worker: profile %d: offset %d of %d bytes", r.Handle, r.Offset, len(p.b))
	}
	end := min(r.Offset+profileChunk, len(p.b))
	c := ipc.ProfileChunk{Data: p.b[r.Offset:end], Offset: r.Offset, Total: len(p.b), More: end < len(p.b), Handle: r.Handle}
	if !c.More {
		delete(ps.held, r.Handle)
	}
	return c, nil
}

// takeProfile runs the profile req names and returns its bytes.
func takeProfile(req ipc.ProfileRequest, stop <-chan struct{}) ([]byte, error) {
	var buf bytes.Buffer
	d := req.Duration
	if d > maxProfileTime {
		return nil, fmt.Errorf("worker: %s for %s: at most %s", req.Name, d, maxProfileTime)
	}
	switch req.Name {
	case "profile":
		if d <= 0 {
			d = 30 * time.Second
		}
		if err := pprof.StartCPUProfile(&buf); err != nil {
			return nil, fmt.Errorf("worker: cpu profile: %w", err)
		}
		err := wait(d, stop)
		pprof.StopCPUProfile()
		if err != nil {
			return nil, err
		}
	case "trace":
		if d <= 0 {
			d = time.Second
		}
		if err := trace.Start(&buf); err != nil {
			return nil, fmt.Errorf("worker: trace: %w", err)
		}
		err := wait(d, stop)
		trace.Stop()
		if err != nil {
			return nil, err
		}
	default:
		p := pprof.Lookup(req.Name)
		if p == nil {
			return nil, fmt.Errorf("worker: no profile %q", req.Name)
		}
		if d > 0 {
			return nil, errors.New("worker: a duration applies to profile and trace only")
		}
		if req.GC && req.Name == "heap" {
			runtime.GC()
		}
		if err := p.WriteTo(&buf, req.Debug); err != nil {
			return nil, fmt.Errorf("worker: %s profile: %w", req.Name, err)
		}
	}
	return buf.Bytes(), nil
}

// wait waits d, or until stop is closed: then it returns an error.
func wait(d time.Duration, stop <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-stop:
		return errors.New("worker: stopping")
	}
}
