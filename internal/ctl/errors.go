package ctl

import (
	"errors"
	"time"
)

// ErrNotRunning is returned by the verbs that need a running master
// (goes.ErrNotRunning is this error).
var ErrNotRunning = errors.New("goes: not running")

// DefaultAnswerTimeout is how long the CLI waits for the master to answer
// (--timeout): a request, and, while a stop or reload drains, between two
// of the master's progress reports.
const DefaultAnswerTimeout = 10 * time.Second
