package connections

import "testing"

// BenchmarkPipeHook is what Pipe's hooks cost every message of a server:
// OnMessage called through pipeTable.wrap with no pipe anywhere (the
// common case), with a pipe on another connection of the same server,
// and called directly.
func BenchmarkPipeHook(b *testing.B) {
	var n int
	user := Handler{OnMessage: func(Connection, []byte) { n++ }}
	msg := []byte("ping")
	b.Run("hook=none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			user.OnMessage(nil, msg)
		}
	})
	b.Run("hook=idle", func(b *testing.B) {
		h := new(pipeTable).wrap(user)
		b.ReportAllocs()
		for b.Loop() {
			h.OnMessage(nil, msg)
		}
	})
	b.Run("hook=other-piped", func(b *testing.B) {
		t := new(pipeTable)
		h := t.wrap(user)
		other := &Client{}
		t.node(other, true)
		c := &Client{}
		b.ReportAllocs()
		for b.Loop() {
			h.OnMessage(c, msg)
		}
	})
	if n == 0 {
		b.Fatal("OnMessage never ran")
	}
}
