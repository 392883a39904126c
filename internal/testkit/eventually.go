package testkit

import (
	"errors"
	"testing"
	"time"
)

// Wait and Poll are the deadline and poll interval for Eventually when the
// test has no reason to choose: the deadline only bounds a failure, so it
// is generous enough for a loaded machine under -race.
const (
	Wait = 20 * time.Second
	Poll = 5 * time.Millisecond
)

// Cond is what Eventually polls: a func reporting whether the condition
// holds, or one returning nil when it holds and otherwise an error saying
// what is still missing (shown if Eventually gives up).
type Cond interface {
	func() bool | func() error
}

// Eventually calls cond, then again every poll, until it holds, and fails t
// (Fatalf, naming what and cond's last error) once total has passed without
// it holding (poll <= 0 means Poll). cond runs on the caller's goroutine
// and may itself fail t.
// Inside a testing/synctest bubble the clock is the bubble's: total and
// poll are then fake time.
func Eventually[C Cond](t testing.TB, total, poll time.Duration, what string, cond C) {
	t.Helper()
	check := func() error {
		switch f := any(cond).(type) {
		case func() bool:
			if !f() {
				return errNotYet
			}
			return nil
		case func() error:
			return f()
		}
		panic("unreachable")
	}
	if poll <= 0 {
		poll = Poll
	}
	deadline := time.Now().Add(total)
	for tries := 1; ; tries++ {
		err := check()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			if err == errNotYet {
				t.Fatalf("timed out after %v (%d tries) waiting for %s", total, tries, what)
			}
			t.Fatalf("timed out after %v (%d tries) waiting for %s: %v", total, tries, what, err)
		}
		time.Sleep(poll)
	}
}

// errNotYet is a func() bool condition that does not hold.
var errNotYet = errors.New("testkit: condition does not hold")
