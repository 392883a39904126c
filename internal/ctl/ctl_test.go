//go:build unix

package ctl

import (
	"strings"
	"testing"

	"github.com/goes-project/goes/ipc"
)

// TestStatusShowsAdmin: the status table names the admin endpoint when
// the master serves one, and says nothing of it otherwise.
func TestStatusShowsAdmin(t *testing.T) {
	for _, tc := range []struct {
		name, admin, want string
	}{
		{name: "served", admin: "127.0.0.1:8084", want: "admin: http://127.0.0.1:8084/ (metrics, healthz, readyz, debug/pprof)\n"},
		{name: "none", admin: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			PrintStatus(&b, "goes", ipc.Status{Master: ipc.MasterStatus{PID: 1, State: "running", Admin: tc.admin}})
			if got := strings.Contains(b.String(), "admin:"); got != (tc.want != "") || !strings.Contains(b.String(), tc.want) {
				t.Fatalf("status table:\n%s\nwant the line %q", b.String(), tc.want)
			}
		})
	}
}
