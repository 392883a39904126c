package worker

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/internal/ticketkeys"
)

// TestTLSListenerCounts: a TLS listener counts completed, resumed and
// failed handshakes, and two listeners with one key set resume each
// other's sessions while the keys rotate under them (go test -race).
func TestTLSListenerCounts(t *testing.T) {
	keys, err := ticketkeys.New()
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{testkit.SelfSigned(t)}}
	var ls [2]*tlsListener
	var wg sync.WaitGroup
	for i := range ls {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = newTLSListener(raw, conf, keys, zerolog.Nop())
		defer ls[i].Close()
		wg.Add(1)
		go func() { // echo one byte per connection
			defer wg.Done()
			for {
				c, err := ls[i].Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					b := make([]byte, 1)
					if _, err := io.ReadFull(c, b); err == nil {
						c.Write(b)
					}
				}()
			}
		}()
	}
	cache := tls.NewLRUClientSessionCache(4)
	dial := func(i int) bool {
		c, err := tls.Dial("tcp", ls[i].Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "goes.test", ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().DidResume
	}
	dial(0)
	const n = 20
	for i := range n {
		if i == n/2 { // a rotation, as the master pushes it
			if keys, err = keys.Rotate(); err != nil {
				t.Fatal(err)
			}
			ls[0].setKeys(keys)
			ls[1].setKeys(keys)
		}
		if !dial(1 - i%2) {
			t.Fatalf("reconnect %d did not resume", i)
		}
	}
	garbage, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	garbage.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	garbage.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, garbage)
	garbage.Close()
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "a failed handshake counted", func() bool {
		return ls[0].counts().Failed == 1
	})
	a, b := ls[0].counts(), ls[1].counts()
	if a.OK+b.OK != n+1 || a.Resumed+b.Resumed != n || b.Failed != 0 {
		t.Fatalf("counts %+v and %+v: want %d ok, %d resumed, 1 failed in all", a, b, n+1, n)
	}
	// Open: the connections past their handshake, until they close (the
	// server closes each after its echo; a failed one never counted).
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "no TLS connection open", func() bool {
		return ls[0].counts().Open == 0 && ls[1].counts().Open == 0
	})
	held, err := tls.Dial("tcp", ls[0].Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "one TLS connection open", func() bool {
		return ls[0].counts().Open == 1
	})
	held.Close()
	testkit.Eventually(t, 5*time.Second, 5*time.Millisecond, "the TLS connection closed", func() bool {
		return ls[0].counts().Open == 0
	})
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()
}
