package text_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/protocoltest"
	"github.com/goes-project/goes/protocols/text"
)

func strs(msgs [][]byte) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m)
	}
	return out
}

func TestInput(t *testing.T) {
	tests := []struct {
		name    string
		reads   []string
		max     int
		want    []string
		wantErr error
	}{
		{name: "lines", reads: []string{"a\nbb\r\n\n"}, want: []string{"a", "bb", ""}},
		{name: "split", reads: []string{"he", "llo", "\nwor", "ld\n"}, want: []string{"hello", "world"}},
		{name: "partial kept", reads: []string{"x\nincomplete"}, want: []string{"x"}},
		{name: "too long without newline", reads: []string{"0123456789"}, max: 8, wantErr: protocols.ErrPackageTooLarge},
		{name: "too long with newline", reads: []string{"0123456789\n"}, max: 8, wantErr: protocols.ErrPackageTooLarge},
		{name: "exactly the limit", reads: []string{"0123456\n"}, max: 8, want: []string{"0123456"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var reads [][]byte
			for _, r := range tc.reads {
				reads = append(reads, []byte(r))
			}
			msgs, err := protocoltest.Feed(text.New(), &protocoltest.Conn{Max: tc.max}, reads...)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got := strs(msgs); tc.wantErr == nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	out, err := text.New().Encode(&protocoltest.Conn{}, []byte("x"), []byte("hi"))
	if err != nil || string(out) != "xhi\n" {
		t.Fatalf("got %q, %v", out, err)
	}
}

// FuzzInput checks that any split of an input into two reads gives the
// same messages and error as one read, and that no message holds a newline.
func FuzzInput(f *testing.F) {
	for _, s := range []string{"a\nb\n", "\r\n\r\n", "no newline", "x\r\ny", "0123456789012345678901234567890123456789012345678901234567890123456789\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		whole, werr := protocoltest.Feed(text.New(), &protocoltest.Conn{Max: 64}, data)
		k := int(cut) % (len(data) + 1)
		split, serr := protocoltest.Feed(text.New(), &protocoltest.Conn{Max: 64}, data[:k], data[k:])
		if (werr == nil) != (serr == nil) {
			t.Fatalf("whole err %v, split err %v", werr, serr)
		}
		if werr == nil && !slices.Equal(strs(whole), strs(split)) {
			t.Fatalf("whole %q, split %q", whole, split)
		}
		for _, m := range whole {
			if bytes.IndexByte(m, '\n') >= 0 {
				t.Fatalf("message %q holds a newline", m)
			}
		}
	})
}

func BenchmarkText(b *testing.B) {
	p, c := text.New(), &protocoltest.Conn{}
	line := []byte("hello, goer\n")
	b.Run("op=input+decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			n, _ := p.Input(c, line)
			p.Decode(c, line[:n])
		}
	})
	b.Run("op=encode", func(b *testing.B) {
		b.ReportAllocs()
		out := make([]byte, 0, 64)
		for b.Loop() {
			out, _ = p.Encode(c, out[:0], line[:11])
		}
	})
}
