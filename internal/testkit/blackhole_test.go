package testkit_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/goes-project/goes/internal/testkit"
)

// TestBlackhole: lines go through both ways until Freeze; then nothing
// does, nothing is closed (a read times out instead of ending), and a new
// connection is held the same way.
func TestBlackhole(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // echo
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	b := testkit.NewBlackhole(t, ln.Addr().String())
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("before\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "before\n" {
		t.Fatalf("before freeze: %q, %v", line, err)
	}
	b.Freeze()
	c.Write([]byte("after\n"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := r.ReadString('\n'); !isTimeout(err) {
		t.Fatalf("after freeze: %q, %v; want a timeout", line, err)
	}
	c2, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("new\n"))
	c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := bufio.NewReader(c2).ReadString('\n'); !isTimeout(err) {
		t.Fatalf("new connection after freeze: %q, %v; want a timeout", line, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
