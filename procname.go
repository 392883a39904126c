package goes

import "github.com/goes-project/goes/internal/launch"

// workerComm is the process name of worker id serving g (ps -o comm,
// top): "goes: w<id> <listener>", cut to the kernel's limit; "" off
// Linux. The listener is g.Name, else its protocol ("http",
// "websocket") or, without one, its transport.
func workerComm(id int, g *Goer) string {
	name := g.Name
	if name == "" {
		if name = protocolName(g); name == "raw" {
			name = g.Transport
		}
	}
	return launch.WorkerComm(id, name)
}
