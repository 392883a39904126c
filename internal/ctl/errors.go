package ctl

import (
	"errors"
	"time"
)

// ErrNotRunning is returned by the verbs that need a running master
// (goes.ErrNotRunning is this error).
var ErrNotRunning = errors.New("goes: not running")

// ErrAlreadyRunning is returned by start when a master already serves
// from the run directory (goes.ErrAlreadyRunning is this error).
var ErrAlreadyRunning = errors.New("goes: already running")

// DefaultAnswerTimeout is how long the CLI waits for the master to answer
// (--timeout): a request, and, while a stop or reload drains, between two
// of the master's progress reports.
const DefaultAnswerTimeout = 10 * time.Second
