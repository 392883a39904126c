//go:build unix && !linux

package main_test

// runFloodClient does nothing: the balance tests run on Linux.
func runFloodClient() {}
