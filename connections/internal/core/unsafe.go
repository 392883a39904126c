package core

import "unsafe"

// StringBytes views s as bytes without copying; the result must not be
// modified (Encode only reads its message).
func StringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
