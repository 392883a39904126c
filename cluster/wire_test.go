package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{name: "plain", in: "alice_01-x", want: "alice_01-x"},
		{name: "dot", in: "a.b", want: "~" + base64.RawURLEncoding.EncodeToString([]byte("a.b"))},
		{name: "wildcards", in: "*>", want: "~" + base64.RawURLEncoding.EncodeToString([]byte("*>"))},
		{name: "tilde-is-not-plain", in: "~x", want: "~" + base64.RawURLEncoding.EncodeToString([]byte("~x"))},
		{name: "long-plain-is-encoded", in: strings.Repeat("a", 65), want: "~" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("a", 65)))},
		{name: "empty", in: "", err: ErrEmptyName},
		{name: "too-long", in: strings.Repeat("a", 257), err: ErrNameTooLong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := token(tc.in)
			if err != tc.err || got != tc.want {
				t.Fatalf("token(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestRouteSubject(t *testing.T) {
	if got := routeSubject("app.goes", 3<<16|65535); got != "app.goes.c.262143" {
		t.Fatalf("routeSubject = %q", got)
	}
}

// FuzzToken: every name gives one valid subject token, and distinct names
// give distinct tokens (the token decodes back to the name).
func FuzzToken(f *testing.F) {
	for _, s := range []string{"alice", "a.b", "Zoë", "*", ">", " ", "~", "a~b", strings.Repeat("z", 64), strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tok, err := token(name)
		if err != nil {
			if name != "" && len(name) <= maxName {
				t.Fatalf("token(%q): %v", name, err)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, ". *>\t\r\n") {
			t.Fatalf("token(%q) = %q: not a subject token", name, tok)
		}
		back := tok
		if enc, ok := strings.CutPrefix(tok, "~"); ok {
			b, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				t.Fatalf("token(%q) = %q: %v", name, tok, err)
			}
			back = string(b)
		}
		if back != name {
			t.Fatalf("token(%q) = %q decodes to %q", name, tok, back)
		}
	})
}

// FuzzParse feeds arbitrary payloads to the parsers of received messages:
// they must fail cleanly, never panic, and accept what the writers write.
// A NATS message arrives whole, so there are no partial reads to split.
func FuzzParse(f *testing.F) {
	f.Add(appendIDs(nil, []uint64{1, 2}), uint64(2))
	f.Add(appendIDs(nil, nil), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, uint64(1))
	f.Add(binary.BigEndian.AppendUint32(nil, 7), uint64(3))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, id uint64) {
		if ids, data, err := parseExcluded(b); err == nil {
			if len(ids)%8 != 0 || len(ids)+len(data) > len(b) {
				t.Fatalf("parseExcluded(%x) = %x, %x", b, ids, data)
			}
			excluded(ids, id)
		}
		parseMember(b)
		parseCountReply(b)

		// What the writers write parses back.
		list := []uint64{id, id ^ 1}
		enc := append(appendIDs(nil, list), b...)
		ids, data, err := parseExcluded(enc)
		if err != nil || !excluded(ids, id) || !excluded(ids, id^1) || string(data) != string(b) {
			t.Fatalf("round trip of %v + %x: %x, %x, %v", list, b, ids, data, err)
		}
		reply := binary.AppendUvarint(binary.BigEndian.AppendUint32(nil, uint32(id)), id>>2)
		if r, c, err := parseCountReply(reply); err != nil || r != uint32(id) || c != int(id>>2) {
			t.Fatalf("count reply round trip: %d, %d, %v", r, c, err)
		}
	})
}

func TestRedactURL(t *testing.T) {
	in := "nats://tok@127.0.0.1:4222, nats://u:p@10.0.0.5:4222,nats://10.0.0.6:4222"
	want := "nats://redacted@127.0.0.1:4222,nats://redacted@10.0.0.5:4222,nats://10.0.0.6:4222"
	if got := RedactURL(in); got != want {
		t.Fatalf("RedactURL = %q, want %q", got, want)
	}
}
