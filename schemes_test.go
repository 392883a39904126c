package goes

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/scheme"
)

// TestSchemeTable: every scheme of the table (internal/scheme) means what it says to a
// listener (NewGoer) and to a client (NewClient), and every row of the
// table has a row here: a new scheme is one row there and one here.
func TestSchemeTable(t *testing.T) {
	type side struct{ transport, proto string } // transport "": refused
	want := map[string]struct{ listen, client side }{
		"tcp":       {side{"tcp", ""}, side{"tcp", ""}},
		"udp":       {side{"udp", ""}, side{"udp", ""}},
		"unix":      {side{"unix", ""}, side{"unix", ""}},
		"tls":       {side{"tls", ""}, side{"tls", ""}},
		"ssl":       {side{"tls", ""}, side{"tls", ""}},
		"text":      {side{"tcp", "text"}, side{"tcp", "text"}},
		"frame":     {side{"tcp", "frame"}, side{"tcp", "frame"}},
		"http":      {side{"tcp", "http"}, side{}},
		"https":     {side{"tls", "http"}, side{}},
		"websocket": {side{"tcp", "websocket"}, side{"tcp", "websocket"}},
		"ws":        {side{"tcp", "websocket"}, side{"tcp", "websocket"}},
		"wss":       {side{"tls", "websocket"}, side{"tls", "websocket"}},
	}
	var names []string
	for name := range scheme.Table {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		w, ok := want[name]
		if !ok {
			t.Errorf("scheme %q has no row in this test", name)
			continue
		}
		delete(want, name)
		t.Run(name, func(t *testing.T) {
			addr := "127.0.0.1:1"
			if name == "unix" {
				addr = "/tmp/goes-scheme-test.sock"
			}
			g := NewGoer(name+"://"+addr, nil, "")
			err := g.validate()
			if name == "tls" || name == "ssl" || name == "https" || name == "wss" {
				g.CertFile, g.KeyFile = "cert.pem", "key.pem"
				err = g.validate()
			}
			switch {
			case w.listen.transport == "":
				if !errors.Is(err, ErrBadAddress) {
					t.Errorf("listen: validate = %v, want ErrBadAddress", err)
				}
			case err != nil:
				t.Errorf("listen: %v", err)
			case g.Transport != w.listen.transport || protoName(g.Protocol) != w.listen.proto || g.Addr != addr:
				t.Errorf("listen: transport %q protocol %q addr %q, want %q %q %q",
					g.Transport, protoName(g.Protocol), g.Addr, w.listen.transport, w.listen.proto, addr)
			}
			// The upper-case scheme is the same row.
			if u := NewGoer(strings.ToUpper(name)+"://"+addr, nil, ""); u.Transport != g.Transport || protoName(u.Protocol) != protoName(g.Protocol) {
				t.Errorf("listen: %s:// differs from %s://", strings.ToUpper(name), name)
			}
			cl, err := NewClient(name+"://"+addr, connections.ClientConfig{})
			switch {
			case w.client.transport == "":
				if !errors.Is(err, connections.ErrBadURI) {
					t.Errorf("client: NewClient = %v, want ErrBadURI", err)
				}
			case err != nil:
				t.Errorf("client: %v", err)
			default:
				if cl.Transport() != w.client.transport || protoName(cl.Protocol()) != w.client.proto {
					t.Errorf("client: transport %q protocol %q, want %q %q",
						cl.Transport(), protoName(cl.Protocol()), w.client.transport, w.client.proto)
				}
				cl.Close()
			}
		})
	}
	for name := range want {
		t.Errorf("scheme %q is gone from the table", name)
	}
}

func protoName(p interface{ Name() string }) string {
	if p == nil {
		return ""
	}
	return p.Name()
}
