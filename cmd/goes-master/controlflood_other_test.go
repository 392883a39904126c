//go:build unix && !linux

package main_test

// runAdminFlood: the admin flood tests run on Linux only.
func runAdminFlood() {}
