//go:build unix && !linux

package master

// foreignOrphan is Linux's (orphans_test.go): the tests that start it run
// there only.
func foreignOrphan(string) int { return 2 }
