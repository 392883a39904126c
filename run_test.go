package goes

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goes-project/goes/connections"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{name: "empty", in: `{}`, check: func(t *testing.T, c *Config) {
			if c.RunDir != "" || len(c.Listeners) != 0 {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "full", in: `{"run_dir": "/run/x", "log_level": "debug", "stop_timeout": "1m30s", "ready_timeout": 5,
			"listeners": [{"name": "w", "listen": "http://127.0.0.1:1", "count": 3, "stop_timeout": "2s", "callback_goroutines": 16}]}`,
			check: func(t *testing.T, c *Config) {
				if c.RunDir != "/run/x" || c.LogLevel != "debug" || time.Duration(c.StopTimeout) != 90*time.Second ||
					time.Duration(c.ReadyTimeout) != 5*time.Second || len(c.Listeners) != 1 ||
					c.Listeners[0].Count != 3 || time.Duration(c.Listeners[0].StopTimeout) != 2*time.Second ||
					c.Listeners[0].CallbackGoroutines != 16 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "cluster", in: `{"cluster": {"nats_url": "nats://10.0.0.5:4222", "prefix": "app"}}`, check: func(t *testing.T, c *Config) {
			if !c.Cluster.on() || c.Cluster.prefix() != "app" || (&Config{}).Cluster.on() || (&ClusterConfig{}).on() {
				t.Fatalf("%+v", c.Cluster)
			}
		}},
		{name: "timeouts", in: `{"listeners": [{"header_timeout": "10s", "body_timeout": 20, "body_min_rate": 4096,
			"keepalive_timeout": "off", "send_timeout": "-1s"}]}`,
			check: func(t *testing.T, c *Config) {
				l := c.Listeners[0]
				if time.Duration(l.HeaderTimeout) != 10*time.Second || time.Duration(l.BodyTimeout) != 20*time.Second ||
					l.BodyMinRate != 4096 || l.KeepAliveTimeout >= 0 || l.SendTimeout >= 0 {
					t.Fatalf("%+v", l)
				}
			}},
		{name: "unknown cluster field", in: `{"cluster": {"enable": true}}`, wantErr: "unknown field"},
		{name: "unknown field", in: `{"run_dri": "/x"}`, wantErr: "unknown field"},
		{name: "bad duration", in: `{"stop_timeout": "soon"}`, wantErr: "duration"},
		{name: "not json", in: `run_dir = x`, wantErr: "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestConfigOverridesGoers(t *testing.T) {
	g := NewGoer("127.0.0.1:8080", nil, "tcp")
	r := &Runner{Goers: []*Goer{g}}
	cfg := &Config{Listeners: []ListenerConfig{{Listen: "text://127.0.0.1:9000", Count: 3, Name: "n", StopTimeout: Duration(time.Second), CallbackGoroutines: 5}}}
	gs, err := r.goers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gs[0].Addr != "127.0.0.1:9000" || gs[0].Count != 3 || gs[0].Name != "n" || gs[0].StopTimeout != time.Second ||
		gs[0].Protocol == nil || gs[0].Protocol.Name() != "text" || gs[0].CallbackGoroutines != 5 || gs[0].connConfig().CallbackGoroutines != 5 {
		t.Fatalf("%+v", gs[0])
	}
	// Timeouts: absent keeps the Goer's (here the defaults), set
	// overrides, negative turns off; all reach the connection runtime.
	g.SendTimeout = 5 * time.Second
	cc := g.connConfig()
	if cc.HeaderTimeout != 0 || cc.SendTimeout != 5*time.Second {
		t.Fatalf("before the config: %+v", cc)
	}
	cfg.Listeners[0] = ListenerConfig{HeaderTimeout: Duration(time.Second), BodyTimeout: Duration(2 * time.Second), BodyMinRate: 10,
		KeepAliveTimeout: -1}
	if _, err := r.goers(cfg); err != nil {
		t.Fatal(err)
	}
	cc = g.connConfig()
	if cc.HeaderTimeout != time.Second || cc.BodyTimeout != 2*time.Second || cc.BodyMinRate != 10 ||
		cc.KeepAliveTimeout >= 0 || cc.SendTimeout != 5*time.Second {
		t.Fatalf("after the config: %+v", cc)
	}
	if _, err := r.goers(&Config{Listeners: make([]ListenerConfig, 2)}); err == nil {
		t.Fatal("more config listeners than Goers accepted")
	}
	if _, err := r.goers(&Config{Listeners: []ListenerConfig{{Listen: "gopher://x:1"}}}); err == nil {
		t.Fatal("unknown scheme accepted")
	}
	if err := NewGoer("gopher://127.0.0.1:1", nil, "").validate(); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("NewGoer with an unknown scheme: validate = %v", err)
	}
	for _, uri := range []string{"websocket://127.0.0.1:1", "ws://127.0.0.1:1", "http://127.0.0.1:1", "frame://127.0.0.1:1"} {
		g := NewGoer(uri, nil, "")
		if err := g.validate(); err != nil || g.Protocol == nil || g.Transport != TransportTCP {
			t.Fatalf("%s: %+v, %v", uri, g, err)
		}
	}
}

func Example() {
	goer := NewGoer("127.0.0.1:8080", nil, "tcp")
	goer.Count = 4
	goer.OnMessage = func(c connections.Connection, data []byte) {
		c.Send("hello, goer", false)
	}
	// goer.RunAll() parses os.Args: start [-d], stop [-g], restart,
	// reload, status [-d] [--json], connections [--json].
	_ = goer
}

func ExampleRunAll() {
	web := NewGoer("http://127.0.0.1:8080", nil, "")
	web.OnMessage = func(c connections.Connection, _ []byte) { c.Send("hello, goer", false) }
	echo := NewGoer("text://127.0.0.1:8082", nil, "")
	echo.OnMessage = func(c connections.Connection, line []byte) { c.SendBytes(line, false) }
	// One binary, one master, workers for both listeners:
	// goes.RunAll(web, echo)
	_, _ = web, echo
}

func ExampleGoer_SendToUser() {
	chat := NewGoer("websocket://127.0.0.1:8081", nil, "")
	chat.Cluster = true // or "cluster": {"enabled": true} in the config
	chat.OnMessage = func(c connections.Connection, data []byte) {
		chat.BindUser(c, "alice")              // or JoinGroup(c, "room")
		chat.SendToUser("bob", data)           // every connection of bob, on any worker
		chat.SendToGroup("room", data, c.ID()) // but this connection
		n, _ := chat.GroupCount("room")        // presence: UserOnline, ConnectionCount too
		_ = n
	}
	// Outside a worker there is no cluster Node.
	fmt.Println(chat.SendToUser("bob", []byte("hi")) == ErrClusterDisabled)
	// Output: true
}
