//go:build unix

package master

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/goes-project/goes/ipc"
)

// onProfile answers a profile request (ipc.TypeProfile) of the control
// socket or the admin endpoint: it finds the worker here, on the run loop,
// and streams the profile from the worker to c on a goroutine, one ok
// frame per chunk, so that a profile of any size passes frames of bounded
// size. The worker's control channel answers other requests meanwhile.
func (m *master) onProfile(msg ipc.Message, c net.Conn) {
	var req ipc.ProfileRequest
	err := msg.Decode(&req)
	var p *proc
	if err == nil {
		p, err = m.workerProc(req.Worker)
	}
	if err != nil {
		answer(c, ipc.Message{Type: ipc.TypeError, ID: msg.ID, Error: err.Error()})
		c.Close()
		return
	}
	m.answering.Add(1)
	go func() {
		defer m.answering.Done()
		defer c.Close()
		out := ipc.NewConn(c)
		send := func(a ipc.Message) error {
			// A chunk waits for the reader as long as a slow client takes
			// to read the one before it.
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			return out.Send(a)
		}
		err := p.profile(req, func(ch ipc.ProfileChunk) error {
			ch.Handle = 0 // the worker's business
			a, err := ipc.New(ipc.TypeOK, msg.ID, ch)
			if err != nil {
				return err
			}
			return send(a)
		})
		if err != nil {
			send(ipc.Message{Type: ipc.TypeError, ID: msg.ID, Error: err.Error()})
		}
	}()
}

// workerProc returns the ready process of worker id; not one the
// watchdog finds unresponsive, which would hold the request until its
// bound.
func (m *master) workerProc(id int) (*proc, error) {
	for _, s := range m.slots {
		if s.id != id {
			continue
		}
		if p := s.cur; p != nil && p.ready {
			if p.unresponsive {
				return nil, fmt.Errorf("master: worker %d is %s: it does not answer its master", id, StateUnresponsive)
			}
			return p, nil
		}
		return nil, fmt.Errorf("master: worker %d is %s", id, s.state)
	}
	return nil, fmt.Errorf(errNoWorkerPrefix+"%d (ids 0 to %d)", id, len(m.slots)-1)
}

// errNoWorkerPrefix begins the error of a request for a worker id the
// master does not run; the admin endpoint answers it with 404 (the error
// reaches it as text, over the run loop's answer).
const errNoWorkerPrefix = "master: no worker "

// profile has the worker take the profile req asks for and passes it to
// each, chunk by chunk, reading on while the worker holds more. Safe for
// concurrent use.
func (p *proc) profile(req ipc.ProfileRequest, each func(ipc.ProfileChunk) error) error {
	// The bound: the profile's own duration (a CPU profile defaults to
	// 30 s), then a minute to write and pass it.
	ctx, cancel := context.WithTimeout(context.Background(), max(req.Duration, 30*time.Second)+time.Minute)
	defer cancel()
	ans, err := p.request(ctx, ipc.TypeProfile, req)
	for {
		if err != nil {
			return err
		}
		var ch ipc.ProfileChunk
		if err := ans.Decode(&ch); err != nil {
			return err
		}
		if err := each(ch); err != nil {
			return err
		}
		if !ch.More {
			return nil
		}
		ans, err = p.request(ctx, ipc.TypeProfileRead, ipc.ProfileRead{Handle: ch.Handle, Offset: ch.Offset + len(ch.Data)})
	}
}
