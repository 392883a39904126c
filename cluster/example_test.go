package cluster_test

import (
	"fmt"
	"os"

	"github.com/goes-project/goes/cluster"
	"github.com/goes-project/goes/connections"
)

// Example shows the wiring: the master embeds the NATS server (unless an
// existing cluster's URL is configured) and hands its URL to the workers;
// each worker runs one Node with its connections' IDBase and keeps it
// informed from the connection callbacks.
func Example() {
	// Master.
	url := os.Getenv("GOES_NATS_URL")
	if url == "" {
		srv := cluster.NewServer(cluster.ServerOptions{})
		u, err := srv.Start()
		if err != nil {
			fmt.Println(err)
			return
		}
		defer srv.Shutdown()
		url = u
	}

	// A worker whose master gave it route 0x10001 (master.Identity.Route).
	const idBase = 0x10001 << 32
	node, err := cluster.NewNode(cluster.NodeOptions{URL: url, IDBase: idBase})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()
	_ = connections.Config{
		IDBase: idBase,
		Handler: connections.Handler{
			OnConnect: func(c connections.Connection) { node.Add(c) },
			OnClose:   func(c connections.Connection) { node.Remove(c) },
			OnMessage: func(c connections.Connection, data []byte) {
				// "login <uid>", "join <group>", "say <text>"... then:
				node.BindUser(c, string(data))
				node.SendToGroup("lobby", data, c.ID())
			},
		},
	}

	n, err := node.ConnectionCount()
	fmt.Println(n, err)
	// Output: 0 <nil>
}
