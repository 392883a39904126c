//go:build !unix

// Package proctest helps tests drive real goes programs; it needs a Unix
// system, as goes does.
package proctest
