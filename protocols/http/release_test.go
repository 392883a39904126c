package http

import (
	"strings"
	"testing"
)

// TestReleaseState: the state goes back to the pool only when the
// connection is idle, and a request after a release is served as well as
// the first.
func TestReleaseState(t *testing.T) {
	p := New()
	c := newTestConn(p)
	answer := true
	var got []string
	rt := &runtime{p: p, c: c, release: true, onMessage: func(r *Request, body []byte) {
		got = append(got, r.Path()+" "+string(body))
		if answer {
			c.SendBytes([]byte("ok"), false)
		}
	}}
	read := func(in string) {
		t.Helper()
		if err := rt.read(t, []byte(in)); err != nil {
			t.Fatalf("read %q: %v", in, err)
		}
	}
	steps := []struct {
		name     string
		in       string
		answer   bool
		released bool
	}{
		{name: "answered GET", in: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", answer: true, released: true},
		{name: "partial request", in: "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbo", answer: true, released: false},
		{name: "rest of it", in: "dy", answer: true, released: true},
		{name: "answer owed", in: "GET /c HTTP/1.1\r\nHost: x\r\n\r\n", answer: false, released: false},
		{name: "pipelined after it", in: "GET /d HTTP/1.1\r\nHost: x\r\n\r\n", answer: true, released: false},
	}
	for _, st := range steps {
		answer = st.answer
		read(st.in)
		if released := c.state == nil; released != st.released {
			t.Fatalf("%s: released %v, want %v", st.name, released, st.released)
		}
	}
	// The owed answer is sent late: the state stays until the next read
	// finds the connection idle.
	c.SendBytes([]byte("late"), false)
	answer = true
	read("GET /e HTTP/1.1\r\nHost: x\r\n\r\n")
	if c.state != nil {
		t.Fatal("not released once every answer was sent")
	}
	// A request that closes the connection keeps the state: what follows
	// is dropped, not parsed.
	read("GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if c.state == nil {
		t.Fatal("released after a closing request")
	}
	if want := "/a |/b body|/c |/d |/e |/f "; strings.Join(got, "|") != want {
		t.Fatalf("delivered %q, want %q", strings.Join(got, "|"), want)
	}
	if n := strings.Count(string(c.out), "HTTP/1.1 200 OK\r\n"); n != 6 {
		t.Fatalf("%d answers, want 6:\n%s", n, c.out)
	}
}
