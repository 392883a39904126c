//go:build unix

package master

import "testing"

func TestWorkerTitle(t *testing.T) {
	for _, tc := range []struct {
		name string
		prog string
		l    Listener
		addr string
		want string
	}{
		{name: "named", prog: "goes-master", l: Listener{Name: "web", Network: "tcp", Addr: "0.0.0.0:8080", Transport: "tcp", Protocol: "http"},
			addr: "0.0.0.0:8080", want: "goes-master: worker 3 [web] http://0.0.0.0:8080"},
		{name: "default name", prog: "chat", l: Listener{Name: "tcp://127.0.0.1:0", Network: "tcp", Addr: "127.0.0.1:0", Transport: "tcp", Protocol: "websocket"},
			addr: "127.0.0.1:41234", want: "chat: worker 3 websocket://127.0.0.1:41234"},
		{name: "raw", prog: "bench", l: Listener{Name: "tcp://127.0.0.1:8080", Network: "tcp", Addr: "127.0.0.1:8080", Transport: "tcp", Protocol: "raw"},
			addr: "127.0.0.1:8080", want: "bench: worker 3 tcp://127.0.0.1:8080"},
		{name: "udp", prog: "p", l: Listener{Name: "echo", Network: "udp", Addr: ":8083", Transport: "udp", Protocol: "raw"},
			addr: "[::]:8083", want: "p: worker 3 [echo] udp://[::]:8083"},
		{name: "https", prog: "p", l: Listener{Name: "api", Network: "tcp", Addr: ":443", Transport: "tls", Protocol: "http"},
			addr: "[::]:443", want: "p: worker 3 [api] https://[::]:443"},
		{name: "wss", prog: "p", l: Listener{Network: "tcp", Addr: ":443", Transport: "tls", Protocol: "websocket"},
			addr: "[::]:443", want: "p: worker 3 wss://[::]:443"},
		{name: "text over tls", prog: "p", l: Listener{Network: "tcp", Addr: ":9", Transport: "tls", Protocol: "text"},
			addr: "[::]:9", want: "p: worker 3 text+tls://[::]:9"},
		{name: "unix", prog: "p", l: Listener{Network: "unix", Addr: "/run/a.sock", Transport: "unix", Protocol: "http"},
			addr: "/run/a.sock", want: "p: worker 3 http+unix:///run/a.sock"},
		{name: "no transport (tests)", prog: "p", l: Listener{Network: "tcp", Addr: "127.0.0.1:0"},
			addr: "127.0.0.1:5", want: "p: worker 3 tcp://127.0.0.1:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := workerTitle(tc.prog, 3, tc.l, tc.addr); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProgramName(t *testing.T) {
	for arg0, want := range map[string]string{
		"/usr/local/bin/goes-master":   "goes-master",
		"./chat":                       "chat",
		"/tmp/go-build1/b001/exe/chat": "chat",
		"server.bin":                   "server",
		"":                             "goes",
		"/":                            "goes",
	} {
		if got := programName(arg0); got != want {
			t.Errorf("programName(%q) = %q, want %q", arg0, got, want)
		}
	}
}
