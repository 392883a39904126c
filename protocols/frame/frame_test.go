package frame_test

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/frame"
	"github.com/goes-project/goes/protocols/protocoltest"
)

func pkt(payload string) []byte {
	out, _ := frame.New().Encode(&protocoltest.Conn{}, nil, []byte(payload))
	return out
}

func TestInput(t *testing.T) {
	two := append(pkt("hello"), pkt("")...)
	tests := []struct {
		name    string
		reads   [][]byte
		max     int
		want    []string
		wantErr error
	}{
		{name: "two frames", reads: [][]byte{two}, want: []string{"hello", ""}},
		{name: "byte by byte", reads: func() (r [][]byte) {
			for i := range two {
				r = append(r, two[i:i+1])
			}
			return r
		}(), want: []string{"hello", ""}},
		{name: "header only pending", reads: [][]byte{{0, 0}}, want: nil},
		{name: "length below header", reads: [][]byte{{0, 0, 0, 3}}, wantErr: frame.ErrBadLength},
		{name: "over the limit before the body arrives", reads: [][]byte{{0, 0, 1, 0}}, max: 100, wantErr: protocols.ErrPackageTooLarge},
		{name: "huge length", reads: [][]byte{{0xff, 0xff, 0xff, 0xff}}, wantErr: protocols.ErrPackageTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := protocoltest.Feed(frame.New(), &protocoltest.Conn{Max: tc.max}, tc.reads...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			var got []string
			for _, m := range msgs {
				got = append(got, string(m))
			}
			if tc.wantErr == nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEncodeHeaderCountsItself(t *testing.T) {
	b := pkt("abc")
	if n := binary.BigEndian.Uint32(b); n != 7 || string(b[4:]) != "abc" {
		t.Fatalf("frame %v", b)
	}
}

// FuzzInput: a split into two reads decodes like one read; every decoded
// payload re-encodes to the bytes it came from.
func FuzzInput(f *testing.F) {
	f.Add(append(pkt("hello"), pkt("x")...), uint8(3))
	f.Add([]byte{0, 0, 0, 4}, uint8(2))
	f.Add([]byte{0, 0, 0, 1, 9}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		whole, werr := protocoltest.Feed(frame.New(), &protocoltest.Conn{Max: 1024}, data)
		k := int(cut) % (len(data) + 1)
		split, serr := protocoltest.Feed(frame.New(), &protocoltest.Conn{Max: 1024}, data[:k], data[k:])
		if (werr == nil) != (serr == nil) || len(whole) != len(split) {
			t.Fatalf("whole %q %v, split %q %v", whole, werr, split, serr)
		}
		var re []byte
		for _, m := range whole {
			re = append(re, pkt(string(m))...)
		}
		if len(re) > len(data) || string(data[:len(re)]) != string(re) {
			t.Fatalf("re-encoding %q does not prefix the input %q", re, data)
		}
	})
}

func BenchmarkFrame(b *testing.B) {
	p, c := frame.New(), &protocoltest.Conn{}
	in := pkt("hello, goer")
	b.Run("op=input+decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			n, _ := p.Input(c, in)
			p.Decode(c, in[:n])
		}
	})
	b.Run("op=encode", func(b *testing.B) {
		b.ReportAllocs()
		out := make([]byte, 0, 64)
		for b.Loop() {
			out, _ = p.Encode(c, out[:0], in[4:])
		}
	})
}
