package worker

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/ipc"
)

// TestProfileChunks: a profile larger than a chunk is read back whole,
// chunk by chunk, each chunk fits a control frame, and the profile is
// dropped after its last chunk.
func TestProfileChunks(t *testing.T) {
	var ps profiles
	want := bytes.Repeat([]byte("0123456789abcdef"), (2*profileChunk+1000)/16)
	ch := ps.hold(want)
	var got []byte
	for n := 0; ; n++ {
		if n > 3 {
			t.Fatal("more chunks than the size takes")
		}
		if ch.Offset != len(got) || ch.Total != len(want) {
			t.Fatalf("chunk %d: offset %d total %d, have %d", n, ch.Offset, ch.Total, len(got))
		}
		msg, err := ipc.New(ipc.TypeOK, 1, ch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ipc.Append(nil, msg); err != nil {
			t.Fatalf("chunk %d does not fit a frame: %v", n, err)
		}
		got = append(got, ch.Data...)
		if !ch.More {
			break
		}
		if ch, err = ps.read(ipc.ProfileRead{Handle: ch.Handle, Offset: len(got)}); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes back, not the %d held", len(got), len(want))
	}
	if len(ps.held) != 0 {
		t.Fatalf("%d profiles held after the last chunk", len(ps.held))
	}
	if _, err := ps.read(ipc.ProfileRead{Handle: ch.Handle}); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("read of a finished profile: %v", err)
	}
	small := ps.hold([]byte("small"))
	if small.More || small.Handle != 0 || string(small.Data) != "small" || len(ps.held) != 0 {
		t.Fatalf("a small profile: %+v, %d held", small, len(ps.held))
	}
}

// TestProfilesHeldAreBounded: at most maxHeld unread profiles are kept,
// the oldest go first, and none past profileKeep.
func TestProfilesHeldAreBounded(t *testing.T) {
	var ps profiles
	big := make([]byte, profileChunk+1)
	var handles []uint64
	for range maxHeld + 2 {
		handles = append(handles, ps.hold(big).Handle)
	}
	if len(ps.held) != maxHeld {
		t.Fatalf("%d held, want %d", len(ps.held), maxHeld)
	}
	for i, h := range handles {
		_, err := ps.read(ipc.ProfileRead{Handle: h, Offset: profileChunk})
		if gone := i < 2; gone != (err != nil) {
			t.Fatalf("profile %d: %v", i, err)
		}
	}
	h := ps.hold(big).Handle
	ps.held[h].at = time.Now().Add(-2 * profileKeep)
	ps.hold(big)
	if _, ok := ps.held[h]; ok {
		t.Fatal("a profile unread for two minutes is still held")
	}
	if _, err := ps.read(ipc.ProfileRead{Handle: ps.next, Offset: len(big) + 1}); err == nil {
		t.Fatal("read past the end")
	}
}

// TestTakeProfile: the profiles a worker takes, and the ones it refuses.
func TestTakeProfile(t *testing.T) {
	stop := make(chan struct{})
	for _, tc := range []struct {
		req  ipc.ProfileRequest
		has  string // prefix of the bytes; "" for an error
		fail string
	}{
		{req: ipc.ProfileRequest{Name: "heap", GC: true}, has: "\x1f\x8b"},
		{req: ipc.ProfileRequest{Name: "goroutine", Debug: 1}, has: "goroutine profile: total"},
		{req: ipc.ProfileRequest{Name: "profile", Duration: 50 * time.Millisecond}, has: "\x1f\x8b"},
		{req: ipc.ProfileRequest{Name: "trace", Duration: 50 * time.Millisecond}, has: "go 1."},
		{req: ipc.ProfileRequest{Name: "nothing"}, fail: `no profile "nothing"`},
		{req: ipc.ProfileRequest{Name: "heap", Duration: time.Second}, fail: "profile and trace only"},
		{req: ipc.ProfileRequest{Name: "profile", Duration: time.Hour}, fail: "at most"},
	} {
		b, err := takeProfile(tc.req, stop)
		switch {
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("%+v: %v, want an error with %q", tc.req, err, tc.fail)
		case tc.fail == "" && (err != nil || !bytes.HasPrefix(b, []byte(tc.has))):
			t.Errorf("%+v: %.40q, %v", tc.req, b, err)
		}
	}
	close(stop)
	if _, err := takeProfile(ipc.ProfileRequest{Name: "profile", Duration: time.Minute}, stop); err == nil {
		t.Error("a profile went on after stop")
	}
}
