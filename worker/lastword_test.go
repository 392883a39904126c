package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/ipc"
)

// TestLastWord: masters waiting for an orphan's last figures get them
// when it says them, and say waits until their answers are written (or
// its bound); one that asks later gets them at once.
func TestLastWord(t *testing.T) {
	l := &lastWord{ready: make(chan struct{})}
	type answer struct {
		st      ipc.WorkerStats
		written func()
	}
	got := make(chan answer, 2)
	for range 2 {
		go func() {
			st, written, err := l.final()
			if err != nil {
				t.Error(err)
			}
			got <- answer{st, written}
		}()
	}
	// Both wait in final before say (pending is read under mu).
	testkit.Eventually(t, 10*time.Second, testkit.Poll, "two masters waiting", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := len(l.pending); n != 2 {
			return fmt.Errorf("%d waiting", n)
		}
		return nil
	})
	said := make(chan struct{})
	go func() {
		defer close(said)
		l.say(ipc.WorkerStats{PID: 7}, 10*time.Second)
	}()
	for range 2 {
		a := <-got
		if a.st.PID != 7 {
			t.Fatalf("last figures %+v", a.st)
		}
		select {
		case <-said:
			t.Fatal("say returned before every answer was written")
		default:
		}
		a.written()
		a.written() // twice is harmless
	}
	select {
	case <-said:
	case <-time.After(10 * time.Second):
		t.Fatal("say still waits after the answers were written")
	}
	if st, _, _ := l.final(); st.PID != 7 {
		t.Fatalf("asked after: %+v", st)
	}
}
