package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goes-project/goes/internal/testkit"
)

// BenchmarkSendToConnection measures messages per second from a Node to a
// connection held by another Node of the same embedded NATS server, end to
// end: Node A publishes, the server routes, Node B's dispatcher delivers.
//
//   - sink=tcp: the connection is a real goes connection (text protocol)
//     and a TCP client reads every line: the whole path a user sees.
//   - sink=counter: the connection only counts what it gets, to show the
//     cost of the cluster path alone.
//
// At most window messages are in flight (delivery is at most once: an
// unbounded burst would overflow the queues and be dropped, not measured).
// allocs/op counts every goroutine of the process: both Nodes, nats.go and
// the embedded server.
func BenchmarkSendToConnection(b *testing.B) {
	_, url := startServer(b, ServerOptions{})
	a := startWorker(b, nodeOptions(b, url, 0, 1))
	w := startWorker(b, nodeOptions(b, url, 1, 1))
	for _, size := range []int{16, 1024} {
		payload := bytes.Repeat([]byte("x"), size)
		name := fmt.Sprintf("size=%dB", size)
		if size >= 1024 {
			name = fmt.Sprintf("size=%dKiB", size/1024)
		}
		b.Run("sink=tcp/"+name, func(b *testing.B) {
			cl := dialClient(b, w)
			var got atomic.Int64
			progress := make(chan struct{}, 1)
			done := make(chan error, 1)
			go func() {
				r := bufio.NewReaderSize(cl.c, 64<<10)
				cl.c.SetReadDeadline(time.Time{})
				for {
					if _, err := r.ReadSlice('\n'); err != nil {
						done <- err
						return
					}
					if got.Add(1)%64 == 0 {
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				}
			}()
			runSends(b, a.node, cl.id, payload, &got, progress)
			cl.c.Close()
			<-done
		})
		b.Run("sink=nats/"+name, func(b *testing.B) {
			// The peer: bare nats.go publish to a channel subscription,
			// what the cluster path costs at least.
			pub, err := nats.Connect(url)
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			sub, err := nats.Connect(url)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			ch := make(chan *nats.Msg, DefaultQueueSize)
			if _, err := sub.ChanSubscribe("bench.raw", ch); err != nil {
				b.Fatal(err)
			}
			sub.Flush()
			var got atomic.Int64
			progress := make(chan struct{}, 1)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-ch:
						if got.Add(1)%64 == 0 {
							select {
							case progress <- struct{}{}:
							default:
							}
						}
					case <-stop:
						return
					}
				}
			}()
			runLoop(b, func() error { return pub.Publish("bench.raw", payload) }, int64(len(payload)), &got, progress)
		})
		b.Run("sink=counter/"+name, func(b *testing.B) {
			c := &countConn{id: uint64(w.node.route)<<32 | 1<<31, progress: make(chan struct{}, 1)}
			if err := w.node.Add(c); err != nil {
				b.Fatal(err)
			}
			defer w.node.Remove(c)
			runSends(b, a.node, c.id, payload, &c.got, c.progress)
		})
	}
}

const window = 512

func runSends(b *testing.B, n *Node, id uint64, payload []byte, got *atomic.Int64, progress chan struct{}) {
	runLoop(b, func() error { return n.SendToConnection(id, payload) }, int64(len(payload)), got, progress)
}

// runLoop calls send per iteration, with at most window messages not yet
// counted in got, and waits for all of them at the end.
func runLoop(b *testing.B, send func() error, size int64, got *atomic.Int64, progress chan struct{}) {
	b.ReportAllocs()
	b.SetBytes(size)
	var sent int64
	start := time.Now()
	for b.Loop() {
		for sent-got.Load() >= window {
			<-progress
		}
		if err := send(); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	// The last messages may not signal progress: poll for them.
	testkit.Eventually(b, testkit.Wait, 50*time.Microsecond, "every message delivered", func() error {
		if n := got.Load(); n < sent {
			return fmt.Errorf("delivered %d of %d: messages were dropped", n, sent)
		}
		return nil
	})
	b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "msgs/s")
}

// countConn is a connection that counts what it is sent.
type countConn struct {
	id       uint64
	got      atomic.Int64
	progress chan struct{}
}

func (c *countConn) ID() uint64 { return c.id }

func (c *countConn) SendBytes([]byte, bool) error {
	if c.got.Add(1)%64 == 0 {
		select {
		case c.progress <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *countConn) Close() error { return nil }
