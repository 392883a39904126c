package connections_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/frame"
	"github.com/goes-project/goes/protocols/http"
	"github.com/goes-project/goes/protocols/text"
)

// pipeCase is a protocol under the pipelining tests: request i as the
// client sends it, the server's answer (it carries i, and pad makes it
// larger than the request, as answers usually are), and how the client
// reads answer i back.
type pipeCase struct {
	name    string
	cfg     func() connections.Config
	request func(i int) []byte
	answer  func(r *bufio.Reader) (int, error)
}

// pipePad makes the text and frame answers about 200 bytes, as an HTTP
// answer is, so that 100,000 of them (20 MB) are more than the kernel's
// socket buffers and MaxSendBufferSize hold together.
var pipePad = strings.Repeat("-", 190)

func pipeCases() []pipeCase {
	return []pipeCase{
		{
			name: "http",
			cfg: func() connections.Config {
				return connections.Config{Protocol: http.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, _ []byte) {
					c.Send(http.RequestOf(c).Path()[1:], false) // the body is the index
				}}}
			},
			request: func(i int) []byte { return fmt.Appendf(nil, "GET /%07d HTTP/1.1\r\nHost: t\r\n\r\n", i) },
			answer:  readHTTPIndex,
		},
		{
			name: "text",
			cfg: func() connections.Config {
				// Two sends per request: the second may find the buffer
				// full, and is queued all the same.
				return connections.Config{Protocol: text.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
					c.Send(string(d)+" "+pipePad[:95], false)
					c.Send(string(d)+" "+pipePad[:95], false)
				}}}
			},
			request: func(i int) []byte { return fmt.Appendf(nil, "%07d\n", i) },
			answer: func(r *bufio.Reader) (int, error) {
				var idx [2]string
				for k := range idx {
					line, err := r.ReadString('\n')
					if err != nil {
						return -1, err
					}
					idx[k], _, _ = strings.Cut(line, " ")
				}
				if idx[0] != idx[1] {
					return -1, fmt.Errorf("answers %s and %s to one request", idx[0], idx[1])
				}
				return strconv.Atoi(idx[0])
			},
		},
		{
			name: "frame",
			cfg: func() connections.Config {
				return connections.Config{Protocol: frame.New(), Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
					c.Send(string(d)+" "+pipePad, false)
				}}}
			},
			request: func(i int) []byte {
				p := fmt.Appendf(nil, "%07d", i)
				return append(binary.BigEndian.AppendUint32(nil, uint32(frame.HeaderSize+len(p))), p...)
			},
			answer: func(r *bufio.Reader) (int, error) {
				var h [frame.HeaderSize]byte
				if _, err := io.ReadFull(r, h[:]); err != nil {
					return -1, err
				}
				p := make([]byte, binary.BigEndian.Uint32(h[:])-frame.HeaderSize)
				if _, err := io.ReadFull(r, p); err != nil {
					return -1, err
				}
				idx, _, _ := strings.Cut(string(p), " ")
				return strconv.Atoi(idx)
			},
		},
	}
}

// readHTTPIndex reads one response and returns its body as a number.
func readHTTPIndex(r *bufio.Reader) (int, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return -1, err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return -1, fmt.Errorf("status line %q", status)
	}
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return -1, err
		}
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return -1, fmt.Errorf("no Content-Length")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return -1, err
	}
	return strconv.Atoi(string(body))
}

// pipelineLate sends n pipelined requests on c from a goroutine, reads
// nothing for wait, then reads every answer and checks they come in
// order; it returns the error of the writer, if any.
func pipelineLate(t *testing.T, c net.Conn, pc pipeCase, n int, wait time.Duration) {
	t.Helper()
	wrote := make(chan error, 1)
	go func() {
		var batch []byte
		for i := 0; i < n; i++ {
			batch = append(batch, pc.request(i)...)
			if len(batch) >= 32<<10 || i == n-1 {
				if _, err := c.Write(batch); err != nil {
					wrote <- fmt.Errorf("request %d: %w", i, err)
					return
				}
				batch = batch[:0]
			}
		}
		wrote <- nil
	}()
	// The client reads nothing for a while: the scenario, not a wait for
	// readiness.
	time.Sleep(wait)
	r := bufio.NewReaderSize(c, 64<<10)
	for i := 0; i < n; i++ {
		got, err := pc.answer(r)
		if err != nil || got != i {
			t.Fatalf("answer %d of %d: got %d, %v", i, n, got, err)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// TestPipelinedReadLate is the finding of issue 18: a client pipelines
// 100,000 requests and reads nothing for 3 s, then reads. Every request
// is answered, in order, none dropped at the full send buffer: the
// server stops reading while the answers it owes are over
// MaxSendBufferSize, and the requests wait in the socket.
func TestPipelinedReadLate(t *testing.T) {
	const n = 100_000
	for _, pc := range pipeCases() {
		t.Run("proto="+pc.name, func(t *testing.T) {
			testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
				t.Parallel()
				cfg := pc.cfg()
				cfg.Engine, cfg.CallbackGoroutines = engine.Name, engine.Pool
				s, addr := serve(t, "tcp", cfg)
				c := dial(t, "tcp", addr)
				c.SetDeadline(time.Now().Add(time.Minute))
				pipelineLate(t, c, pc, n, 3*time.Second)
				st := s.Stats()
				if st.SendBufferFull != 0 || st.Requests != n {
					t.Fatalf("Stats: SendBufferFull %d, Requests %d; want 0 and %d", st.SendBufferFull, st.Requests, n)
				}
			})
		})
	}
}

// httpSizes returns the length of the requests and of the answers of
// the "http" pipe case.
func httpSizes(t *testing.T, pc pipeCase) (req, resp int) {
	t.Helper()
	cfg := pc.cfg()
	_, addr := serve(t, "tcp", cfg)
	c := dial(t, "tcp", addr)
	c.Write(pc.request(0))
	var cr countingReader
	cr.r = c
	if _, err := pc.answer(bufio.NewReaderSize(&cr, 1)); err != nil {
		t.Fatal(err)
	}
	return len(pc.request(0)), cr.n
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// nonReaders opens k connections to addr that pipeline the requests of pc
// for d and never read; it returns once they have stopped writing (d
// passed or the server closed them) and the connections are left open.
func nonReaders(t *testing.T, addr string, pc pipeCase, k int, d time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for range k {
		c := dial(t, "tcp", addr)
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		c.SetWriteDeadline(time.Now().Add(d))
		wg.Go(func() {
			var batch []byte
			for i := 0; ; i++ {
				batch = append(batch, pc.request(i%10_000_000)...)
				if len(batch) >= 32<<10 {
					if _, err := c.Write(batch); err != nil {
						return
					}
					batch = batch[:0]
				}
			}
		})
	}
	wg.Wait()
}

// checkBounded checks, from the server's counters, that the worker holds
// at most limit plus one answer of queued answers per connection and one
// read of unprocessed input per connection: it stopped reading the
// pipelining non-readers instead of serving them without bound.
func checkBounded(t *testing.T, s *connections.Server, conns, reqLen, respLen, limit int) {
	t.Helper()
	st := s.Stats()
	queued := int64(st.Requests)*int64(respLen) - int64(st.BytesOut) // answers produced, not written
	unread := int64(st.BytesIn) - int64(st.Requests)*int64(reqLen)   // input read, not delivered
	t.Logf("%d non-readers: the worker read %d bytes (%d requests), wrote %d; %d bytes of answers queued, %d of input unprocessed; SendBufferFull %d",
		conns, st.BytesIn, st.Requests, st.BytesOut, queued, unread, st.SendBufferFull)
	if maxQ := int64(conns * (limit + respLen)); queued > maxQ {
		t.Errorf("%d bytes of answers produced and not written: want at most %d (MaxSendBufferSize and one answer per connection)", queued, maxQ)
	}
	if maxU := int64(conns * (64<<10 + reqLen)); unread > maxU {
		t.Errorf("%d bytes of input read and not delivered: want at most %d (one read per connection)", unread, maxU)
	}
	if st.SendBufferFull != 0 {
		t.Errorf("SendBufferFull = %d, want 0: answers to requests that were read are never dropped", st.SendBufferFull)
	}
}

// TestNonReaderCutBySendTimeout: a client that pipelines requests and
// never reads makes the server stop reading it once MaxSendBufferSize of
// answers wait (what it took in is bounded by what it answered), and is
// closed by SendTimeout: the read timeouts of the request it left
// half-read do not apply while the server is the one not reading.
func TestNonReaderCutBySendTimeout(t *testing.T) {
	pc := pipeCases()[0]
	reqLen, respLen := httpSizes(t, pc)
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		t.Parallel()
		const limit = 256 << 10
		cfg := pc.cfg()
		cfg.Engine, cfg.CallbackGoroutines = engine.Name, engine.Pool
		// The read timeouts are shorter than SendTimeout: the server
		// stops reading with a request half read (HeaderTimeout) or none
		// (KeepAliveTimeout), and neither may cut the client for it.
		// (Not shorter than a second: a loaded machine may leave the
		// first request unread for a moment, and HeaderTimeout runs from
		// the accept.)
		cfg.MaxSendBufferSize, cfg.SendTimeout = limit, 2*time.Second
		cfg.HeaderTimeout, cfg.KeepAliveTimeout, cfg.BodyTimeout = time.Second, time.Second, time.Second
		s, addr := serve(t, "tcp", cfg)
		// The writer stops when the server closes the connection (or
		// after 20 s: then the test fails below).
		nonReaders(t, addr, pc, 1, 20*time.Second)
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "the non-reader closed", func() error {
			if n := s.Stats().Connections; n != 0 {
				return fmt.Errorf("%d connections open", n)
			}
			return nil
		})
		if got := s.Stats().Closed; got[connections.ClosedSendTimeout] != 1 || len(got) != 1 {
			t.Errorf("Stats().Closed = %v, want one send_timeout", got)
		}
		// The answers queued when it was closed are gone; those it
		// produced before are bounded all the same.
		checkBounded(t, s, 1, reqLen, respLen, limit)
	})
}

// TestNonReadersBounded: five clients pipeline GETs for 3 s and never
// read. The red-team run saw a worker take in 96.7 MB of their requests
// in 60 s; the worker reads from each only as long as its answers fit in
// MaxSendBufferSize (plus what the kernel buffers), so what it read is
// bounded by what it could answer.
func TestNonReadersBounded(t *testing.T) {
	pc := pipeCases()[0]
	reqLen, respLen := httpSizes(t, pc)
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		t.Parallel()
		cfg := pc.cfg()
		cfg.Engine, cfg.CallbackGoroutines = engine.Name, engine.Pool
		s, addr := serve(t, "tcp", cfg)
		nonReaders(t, addr, pc, 5, 3*time.Second)
		if n := s.Stats().Connections; n != 5 {
			t.Errorf("%d connections open, want the 5 non-readers (SendTimeout is 60 s)", n)
		}
		checkBounded(t, s, 5, reqLen, respLen, connections.DefaultMaxSendBufferSize)
	})
}

// TestOwnSendsDroppedAndLogged: what user code sends on its own (here a
// goroutine started by OnConnect, not the dispatch of a read packet)
// still fails with ErrSendBufferFull at MaxSendBufferSize; every drop is
// counted in Stats.SendBufferFull and logged at warn level, the first at
// once, the rest in one summary line per interval.
func TestOwnSendsDroppedAndLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		var full atomic.Int64
		piece := strings.Repeat("x", 1000)
		s := connections.NewServer(only(connections.Config{Protocol: text.New(), Engine: connections.EngineStd,
			MaxSendBufferSize: 8 << 10, Logger: zerolog.New(&logs),
			Handler: connections.Handler{OnConnect: func(c connections.Connection) {
				go func() {
					for range 100 {
						if errors.Is(c.Send(piece, false), connections.ErrSendBufferFull) {
							full.Add(1)
						}
					}
				}()
			}}}))
		ln := testkit.NewPipeListener(t)
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		t.Cleanup(func() { s.Close(); <-done })
		dialPipe(t, ln) // never reads
		synctest.Wait()
		n := full.Load()
		// The pipe takes nothing from a client that does not read: what
		// fits in MaxSendBufferSize is queued (one more send starts below
		// it), the rest is dropped.
		if fit := int64(8<<10)/int64(len(piece)+1) + 1; 100-n > fit || s.Stats().SendBufferFull != uint64(n) {
			t.Fatalf("%d sends failed with ErrSendBufferFull, Stats().SendBufferFull = %d: want the same, all but at most %d", n, s.Stats().SendBufferFull, fit)
		}
		first := logs.lines(`"message":"send dropped`)
		if len(first) != 1 || !strings.Contains(first[0], `"conn":1,`) || !strings.Contains(first[0], `"level":"warn"`) {
			t.Fatalf("log lines:\n%s\nwant one, naming the connection", strings.Join(first, "\n"))
		}
		time.Sleep(12 * time.Second)
		synctest.Wait()
		sum := logs.lines(`"message":"sends dropped`)
		if len(sum) != 1 || !strings.Contains(sum[0], fmt.Sprintf(`"dropped":%d,`, n-1)) || !strings.Contains(sum[0], `"level":"warn"`) {
			t.Fatalf("log lines:\n%s\nwant one summary of %d drops", strings.Join(sum, "\n"), n-1)
		}
	})
}

// TestBackpressureAndPauseRecv: the user's PauseRecv and the pause for
// backpressure are independent. A connection paused for backpressure
// stays paused when the user calls ResumeRecv, until its output drains;
// one paused by PauseRecv stays paused when its output drains, until
// ResumeRecv.
func TestBackpressureAndPauseRecv(t *testing.T) {
	const limit = 64 << 10
	big := strings.Repeat("b", 8<<20) // more than the kernel's socket buffers take
	testkit.EachEngine(t, func(t *testing.T, engine testkit.Engine) {
		t.Parallel()
		conns := make(chan connections.Connection, 2)
		s, addr := serve(t, "tcp", connections.Config{Engine: engine.Name, CallbackGoroutines: engine.Pool,
			Protocol: text.New(), MaxSendBufferSize: limit,
			Handler: connections.Handler{OnMessage: func(c connections.Connection, d []byte) {
				switch string(d) {
				case "pause":
					c.PauseRecv()
					fallthrough
				case "big":
					c.Send(big, false) // the answer of a request: queued past the limit, reading stops
					conns <- c
				}
				c.Send(string(d), false)
			}}})
		c := dial(t, "tcp", addr)
		c.SetDeadline(time.Now().Add(time.Minute))
		r := bufio.NewReaderSize(c, 64<<10)
		requests := func(want uint64) error {
			if n := s.Stats().Requests; n != want {
				return fmt.Errorf("%d requests delivered, want %d", n, want)
			}
			return nil
		}
		// still fails t if the number of requests delivered moves from
		// want while the client does nothing for a moment.
		still := func(want uint64, why string) {
			t.Helper()
			for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
				if err := requests(want); err != nil {
					t.Fatalf("%s: %v", why, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		line := func(want string) {
			t.Helper()
			if got, err := r.ReadString('\n'); got != want+"\n" || err != nil {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
		}
		bigAnswer := func() {
			t.Helper()
			if _, err := io.CopyN(io.Discard, r, int64(len(big)+1)); err != nil {
				t.Fatalf("reading the big answer: %v", err)
			}
		}

		io.WriteString(c, "big\nafter\n")
		uc := <-conns
		testkit.Eventually(t, testkit.Wait, testkit.Poll, "big delivered", func() error { return requests(1) })
		uc.PauseRecv()
		uc.ResumeRecv() // the user's pause ends; backpressure's holds
		still(1, "backpressure, after the user's ResumeRecv")
		bigAnswer()
		line("big")
		line("after")

		io.WriteString(c, "pause\nnext\n")
		<-conns
		bigAnswer()
		line("pause")
		still(3, "PauseRecv, after the output drained")
		uc.ResumeRecv()
		line("next")
	})
}
