package app

import (
	"testing"
	"time"

	"github.com/goes-project/goes"
)

// TestBuildSettings: every listener setting of the config reaches its Goer.
func TestBuildSettings(t *testing.T) {
	cfg, err := goes.ParseConfig([]byte(`{"listeners": [
		{"name": "slow", "listen": "text://127.0.0.1:9000", "count": 2, "stop_timeout": "3s", "max_package_size": 1024,
		 "max_send_buffer_size": 4096, "idle_timeout": "5s", "callback_goroutines": 8},
		{"listen": "http://127.0.0.1:9001", "handler": "hello"}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	gs, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := gs[0]
	if g.Name != "slow" || g.Count != 2 || g.StopTimeout != 3*time.Second || g.MaxPackageSize != 1024 ||
		g.MaxSendBufferSize != 4096 || g.IdleTimeout != 5*time.Second || g.CallbackGoroutines != 8 {
		t.Fatalf("first listener's Goer: %+v", g)
	}
	if gs[1].CallbackGoroutines != 0 || gs[1].Protocol == nil || gs[1].Protocol.Name() != "http" {
		t.Fatalf("second listener's Goer: %+v", gs[1])
	}
}
