package wire

import (
	"bytes"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte{'a'}, size)
		for _, mask := range []bool{false, true} {
			b := AppendFrame(nil, OpText, p, mask)
			for cut := 0; cut < len(b) && cut < 20; cut++ {
				if _, _, n, err := ParseFrame(b[:cut]); n != 0 || err != nil {
					t.Fatalf("size %d mask %v: %d of %d bytes parsed as a frame (n %d, err %v)", size, mask, cut, len(b), n, err)
				}
			}
			op, got, n, err := ParseFrame(append(b, 0x81))
			if err != nil || n != len(b) || op != OpText || !bytes.Equal(got, p) {
				t.Fatalf("size %d mask %v: op %d, %d bytes, n %d of %d, err %v", size, mask, op, len(got), n, len(b), err)
			}
		}
	}
}

func TestScan(t *testing.T) {
	a, b := Message(1, 123, 64), Message(12, 456789, 10)
	if len(a) != 64 {
		t.Fatalf("message of %d bytes, want 64", len(a))
	}
	in := []byte(`{"push":{"pub":{"data":"` + string(a) + `"}}}` + "\n" + `{"push":{"pub":{"data":"` + string(b) + `"}}}` + " fanout x fanout 3")
	type got struct {
		seq int
		ns  int64
	}
	var seen []got
	Scan(in, func(seq int, ns int64) { seen = append(seen, got{seq, ns}) })
	want := []got{{1, 123}, {12, 456789}}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("Scan found %v, want %v", seen, want)
	}
}

func TestUpgrade(t *testing.T) {
	head := []byte("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + AcceptKey(ClientKey) + "\r\n\r\n")
	if err := CheckUpgradeResponse(head); err != nil {
		t.Fatal(err)
	}
	// RFC 6455's example key and answer.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %s", got)
	}
	if CheckUpgradeResponse([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) == nil {
		t.Fatal("a 400 passed")
	}
}
