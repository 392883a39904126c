package connections

import "unsafe"

// stringBytes views s as bytes without copying; the result must not be
// modified (Encode only reads its message).
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
