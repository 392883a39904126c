package goes

import "testing"

// TestAdminAddr: the config's "admin" wins over the program's (Runner.Admin,
// else the first Goer.Admin); "off" turns the endpoint off.
func TestAdminAddr(t *testing.T) {
	for _, tc := range []struct {
		name   string
		runner string
		goers  []string
		config string
		want   string
	}{
		{name: "none", want: ""},
		{name: "goer", goers: []string{"", "127.0.0.1:9100", "127.0.0.1:9200"}, want: "127.0.0.1:9100"},
		{name: "runner over goer", runner: "127.0.0.1:9300", goers: []string{"127.0.0.1:9100"}, want: "127.0.0.1:9300"},
		{name: "config over both", runner: "127.0.0.1:9300", goers: []string{"127.0.0.1:9100"}, config: `{"admin": "127.0.0.1:9400"}`, want: "127.0.0.1:9400"},
		{name: "config off", goers: []string{"127.0.0.1:9100"}, config: `{"admin": "off"}`, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Runner{Admin: tc.runner}
			var goers []*Goer
			for _, a := range tc.goers {
				g := NewGoer("text://127.0.0.1:0", nil, "")
				g.Admin = a
				goers = append(goers, g)
			}
			cfg := &Config{}
			if tc.config != "" {
				var err error
				if cfg, err = ParseConfig([]byte(tc.config)); err != nil {
					t.Fatal(err)
				}
			}
			if got := r.adminAddr(cfg, goers); got != tc.want {
				t.Fatalf("admin %q, want %q", got, tc.want)
			}
		})
	}
}
