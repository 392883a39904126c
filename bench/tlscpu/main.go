// Command tlscpu is bench/tlscpu.sh's handshake client (issue 20): -n
// HTTPS requests to -addr, -c at a time, each on a new connection (a TLS
// handshake, "GET / HTTP/1.1" with Connection: close, the answer read to
// its end), with Go's TLS client, so that the key exchange group is
// chosen here and the one negotiated can be told: -groups default (Go's:
// X25519MLKEM768 offered first, then X25519, P-256, P-384) or x25519
// (X25519 only, what OpenSSL 3.0 clients such as ab settle on); -tls12
// caps the version at 1.2; -resume keeps a session cache, so that every
// connection after the first resumes by a ticket. It prints one line: the
// handshakes done and failed, and the groups, versions and resumptions
// the connections negotiated.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "", "host:port of the HTTPS server")
	n := flag.Int("n", 3000, "connections (requests) in all")
	c := flag.Int("c", 20, "connections at a time")
	groups := flag.String("groups", "default", "key exchange groups offered: default (Go's, X25519MLKEM768 first) or x25519")
	tls12 := flag.Bool("tls12", false, "TLS 1.2 at most")
	resume := flag.Bool("resume", false, "resume sessions (a client session cache)")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "tlscpu: -addr is required")
		os.Exit(2)
	}
	conf := &tls.Config{InsecureSkipVerify: true}
	switch *groups {
	case "default":
	case "x25519":
		conf.CurvePreferences = []tls.CurveID{tls.X25519}
	default:
		fmt.Fprintf(os.Stderr, "tlscpu: -groups %q: want default or x25519\n", *groups)
		os.Exit(2)
	}
	if *tls12 {
		conf.MaxVersion = tls.VersionTLS12
	}
	if *resume {
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(*c)
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + *addr + "\r\nConnection: close\r\n\r\n")
	var (
		next, failed atomic.Int64
		mu           sync.Mutex
		seen         = map[string]int{}
		firstErr     error
		wg           sync.WaitGroup
	)
	began := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for next.Add(1) <= int64(*n) {
				key, err := one(*addr, conf, req, buf)
				mu.Lock()
				if err != nil {
					failed.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else {
					seen[key]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	keys := make([]string, 0, len(seen))
	for k, v := range seen {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(keys)
	fmt.Printf("%d handshakes (%d failed) in %.2fs: %s", int64(*n)-failed.Load(), failed.Load(), took.Seconds(), strings.Join(keys, ", "))
	if firstErr != nil {
		fmt.Printf(" (first error: %v)", firstErr)
	}
	fmt.Println()
}

// one makes one connection: a handshake, a request, its answer to the
// end. It returns what the handshake negotiated ("X25519 TLS1.3 full").
func one(addr string, conf *tls.Config, req, buf []byte) (string, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	st := c.ConnectionState()
	if _, err := c.Write(req); err != nil {
		return "", err
	}
	got := 0
	for {
		k, err := c.Read(buf)
		got += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	if got == 0 {
		return "", io.ErrUnexpectedEOF
	}
	how := "full"
	if st.DidResume {
		how = "resumed"
	}
	return fmt.Sprintf("%v %s %s", st.CurveID, tls.VersionName(st.Version), how), nil
}
