//go:build unix

package master

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goes-project/goes/ipc"
)

// previous holds the last totals of the previous generation, which a new
// master's metrics include while it drains (Status.Previous) and take
// over when it exits. Safe for concurrent use.
type previous struct {
	asking   atomic.Bool // the watchdog's request is in flight
	mu       sync.Mutex
	last     []ipc.Carried
	master   ipc.MasterStatus // its master's figures, at last
	draining int              // its worker processes still draining, at last
	known    bool             // it has answered once
}

// take returns the last totals, which the master carries on with once
// the previous generation has exited. They stay: a status whose snapshot
// was taken before the exit (without them among the carried) still reads
// them, from previousTotals.
func (p *previous) take() ([]ipc.Carried, ipc.MasterStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.master
}

// statusAskPrevious bounds the request for the previous generation's
// totals (the metrics': the collector's own bound is 5 s). A master busy
// draining may take longer than statusAskMaster.
const statusAskPrevious = time.Second

// statusFirstPrevious bounds the asking of a previous master that has
// never answered (previousTotals), within the collector's own 5 s.
const statusFirstPrevious = 3 * time.Second

// errPreviousUnknown fails a scrape while the previous generation's
// totals are not known: its counters would be missing, and read as a
// reset.
var errPreviousUnknown = errors.New("master: the previous generation's totals are not known yet")

// previousTotals asks the previous master (its control socket at path;
// empty: none, or gone) for its status and returns its totals per
// listener name and id, its worker processes still draining and its
// master's figures, remembering them; when it does not answer in time,
// the last ones, and errPreviousUnknown when it has never answered. The
// watchdog asks too, so that what is taken over when it exits is at most
// a watchdog interval old.
func (m *master) previousTotals(path string) ([]ipc.Carried, int, ipc.MasterStatus, error) {
	if path == "" {
		return nil, 0, ipc.MasterStatus{}, nil
	}
	p := m.o.Paths
	p.Socket = path
	req, _ := ipc.New(ipc.TypeStatus, 1, ipc.StatusRequest{Local: true})
	var st ipc.Status
	answered, gone := false, false
	// Until it has answered once, it is asked again for a while: just
	// after a reload the previous master may still be busy handing over
	// (its control loop answers once the upgrade is done).
	for deadline := time.Now().Add(statusFirstPrevious); ; {
		ans, err := p.Request(req, statusAskPrevious)
		if answered = err == nil && ans.Decode(&st) == nil; answered || time.Now().After(deadline) {
			break
		}
		if errors.Is(err, ErrNotRunning) { // ECONNREFUSED, ENOENT (Paths.Dial)
			// It has exited (its socket closed or removed) before it
			// was asked: its totals are not to be had any more, and
			// the scrape goes on without them.
			gone = true
			break
		}
		m.prev.mu.Lock()
		known := m.prev.known
		m.prev.mu.Unlock()
		if known {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if answered {
		var out []ipc.Carried
		for _, w := range st.Workers {
			if w.MasterPID != st.Master.PID {
				continue
			}
			counts := w.Counts()
			counts.Add(carriedCounts(w, st))
			out = append(out, ipc.Carried{Name: w.Name, ID: w.ID, Load: slotLoad(w, st), Counts: counts})
		}
		draining := 0
		for _, w := range append(st.Workers, st.Retiring...) {
			if w.MasterPID == st.Master.PID && w.PID != 0 {
				draining++
			}
		}
		m.prev.mu.Lock()
		m.prev.last, m.prev.draining, m.prev.master, m.prev.known = out, draining, st.Master, true
		m.prev.mu.Unlock()
	}
	m.prev.mu.Lock()
	defer m.prev.mu.Unlock()
	if !m.prev.known && !gone {
		return nil, 0, ipc.MasterStatus{}, errPreviousUnknown
	}
	return m.prev.last, m.prev.draining, m.prev.master, nil
}
