package ipc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestDecodeTable(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		typ     string
		n       int
		wantErr error
	}{
		{name: "whole", in: "goes/1 15\n{\"type\":\"ping\"}", typ: "ping", n: 25},
		{name: "leading newlines", in: "\n\r\ngoes/1 15\n{\"type\":\"ping\"}", typ: "ping", n: 28},
		{name: "crlf header", in: "goes/1 15\r\n{\"type\":\"ping\"}", typ: "ping", n: 26},
		{name: "partial header", in: "goes/1 1", n: 0},
		{name: "partial prefix", in: "go", n: 0},
		{name: "partial payload", in: "goes/1 15\n{\"type\"", n: 0},
		{name: "empty", in: "", n: 0},
		{name: "garbage", in: "GET / HTTP/1.1\r\n", wantErr: ErrBadFrame},
		{name: "version 2", in: "goes/2 2\n{}", wantErr: ErrVersion},
		{name: "bad version", in: "goes/x 2\n{}", wantErr: ErrBadFrame},
		{name: "no length", in: "goes/1\n{}", wantErr: ErrBadFrame},
		{name: "negative length", in: "goes/1 -1\n", wantErr: ErrBadFrame},
		{name: "too large", in: "goes/1 99999999\n", wantErr: ErrTooLarge},
		{name: "header too long", in: "goes/1 0000000000000001", wantErr: ErrBadFrame},
		{name: "bad json", in: "goes/1 2\n{]", wantErr: ErrBadFrame},
		{name: "no type", in: "goes/1 2\n{}", wantErr: ErrBadFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, n, err := Decode([]byte(tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if n != tc.n || m.Type != tc.typ {
				t.Fatalf("got (%q, %d), want (%q, %d)", m.Type, n, tc.typ, tc.n)
			}
		})
	}
}

func TestConnRoundTrip(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	ca, cb := NewConn(a), NewConn(b)
	want, err := New("status", 7, map[string]int{"workers": 3})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		ca.Send(want)
		ca.Send(Message{Type: "ok", ID: 8})
		a.Close()
	}()
	got, err := cb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]int
	if err := got.Decode(&body); err != nil || got.Type != "status" || got.ID != 7 || body["workers"] != 3 {
		t.Fatalf("got %+v %v (%v)", got, body, err)
	}
	if got, err := cb.Recv(); err != nil || got.Type != "ok" || got.ID != 8 {
		t.Fatalf("second = %+v, %v", got, err)
	}
	if _, err := cb.Recv(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

func TestRecvTruncated(t *testing.T) {
	c := NewConn(struct {
		io.Reader
		io.Writer
	}{strings.NewReader("goes/1 15\n{\"ty"), io.Discard})
	if _, err := c.Recv(); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
}

// chunkReader returns its data in pieces of the given sizes.
type chunkReader struct {
	data  []byte
	sizes []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = max(1, min(n, r.sizes[0]))
		r.sizes = r.sizes[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func (r *chunkReader) Write(p []byte) (int, error) { return len(p), nil }

func FuzzDecode(f *testing.F) {
	frame, _ := Append(nil, Message{Type: "status", ID: 1, Body: []byte(`{"a":1}`)})
	f.Add(frame, uint8(3))
	f.Add([]byte("goes/1 15\n{\"type\":\"ping\"}goes/1 15\n{\"type\":\"ping\"}"), uint8(11))
	f.Add([]byte("goes/1 99999999\n"), uint8(1))
	f.Add([]byte("\n\ngoes/1 2\n{}"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// Whole buffer: decode every frame it holds.
		var whole []Message
		var wholeErr error
		buf := data
		for {
			m, n, err := Decode(buf)
			if err != nil {
				wholeErr = err
				break
			}
			if n == 0 {
				break
			}
			if n > len(buf) {
				t.Fatalf("n = %d > len %d", n, len(buf))
			}
			whole = append(whole, m)
			buf = buf[n:]
		}
		// The same bytes split across reads give the same messages.
		c := NewConn(&chunkReader{data: data, sizes: []int{int(split), 1, int(split) * 3}})
		for i := 0; ; i++ {
			m, err := c.Recv()
			if err != nil {
				if i < len(whole) {
					t.Fatalf("split read stopped after %d of %d messages: %v", i, len(whole), err)
				}
				if wholeErr != nil && errors.Is(err, io.EOF) {
					t.Fatalf("whole decode failed (%v) but split read reached EOF", wholeErr)
				}
				break
			}
			if i >= len(whole) || m.Type != whole[i].Type || m.ID != whole[i].ID || !bytes.Equal(m.Body, whole[i].Body) {
				t.Fatalf("message %d differs between whole and split decoding", i)
			}
			// What decodes must encode and decode back the same.
			enc, err := Append(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			back, n, err := Decode(enc)
			if err != nil || n != len(enc) || back.Type != m.Type || back.ID != m.ID {
				t.Fatalf("re-decode: %+v %d %v", back, n, err)
			}
		}
	})
}

// TestLoadFieldsAtTopLevel: a worker's Load stands at the top level of
// both WorkerStats and Worker in JSON, as the fields did before Load was
// shared, so that masters of two versions (during a reload) read each
// other's status.
func TestLoadFieldsAtTopLevel(t *testing.T) {
	load := Load{Connections: 3, Requests: 7, Timers: 2, Cluster: &NodeStats{Name: "n"}}
	for _, v := range []any{WorkerStats{PID: 1, Load: load}, Worker{ID: 1, Load: load}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]string{"connections": "3", "requests": "7", "timers": "2", "cluster": `{"name":"n"`} {
			if got := string(m[key]); !strings.HasPrefix(got, want) {
				t.Errorf("%T: %q = %s, want %s…", v, key, got, want)
			}
		}
	}
}
