package connections

import "testing"

// TestClientHasNoTimeouts: a Client applies none of the read and send
// timeouts, so its connections carry no timers (internal/core's
// TestTimeoutDefaults has a server's).
func TestClientHasNoTimeouts(t *testing.T) {
	cl, err := NewClient("tcp://127.0.0.1:1", ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cl.srv.rt.Timed {
		t.Fatal("a Client's connections carry the server's timeouts")
	}
}
