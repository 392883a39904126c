package testkit

import (
	"net"
	"sync"
	"testing"
)

// Blackhole is a TCP proxy on loopback that forwards connections to a
// target until Freeze; from then on it forwards nothing, in either
// direction, and closes nothing: a server that hangs, or a link that drops
// every packet. Only a timeout of the peers can notice. Connections made
// after Freeze are accepted and held the same way.
//
// Its methods are safe for concurrent use.
type Blackhole struct {
	ln     net.Listener
	target string
	frozen chan struct{}
	closed chan struct{}
	freeze sync.Once
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

// NewBlackhole starts a Blackhole to target ("host:port"); t.Cleanup
// closes it and every connection it holds.
func NewBlackhole(t testing.TB, target string) *Blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Blackhole{ln: ln, target: target, frozen: make(chan struct{}), closed: make(chan struct{})}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

// Addr is the address to dial instead of the target's.
func (b *Blackhole) Addr() string { return b.ln.Addr().String() }

// Freeze stops all forwarding, for good.
func (b *Blackhole) Freeze() { b.freeze.Do(func() { close(b.frozen) }) }

func (b *Blackhole) close() {
	b.Freeze()
	b.ln.Close()
	b.mu.Lock()
	close(b.closed)
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Blackhole) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		d, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		select {
		case <-b.closed:
			c.Close()
			d.Close()
		default:
			b.conns = append(b.conns, c, d)
			b.wg.Add(2)
			go b.pipe(c, d)
			go b.pipe(d, c)
		}
		b.mu.Unlock()
	}
}

// pipe copies src to dst until src ends (then it closes both) or the
// Blackhole freezes (then it drops what it read and waits for close).
func (b *Blackhole) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-b.frozen:
			<-b.closed
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}
