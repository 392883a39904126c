//go:build unix

package goes

import (
	"github.com/rs/zerolog"

	"github.com/goes-project/goes/internal/launch"
	"github.com/goes-project/goes/master"
)

// clusterOn reports whether g's workers get a cluster Node.
func clusterOn(cfg *Config, g *Goer) bool { return g.Cluster || cfg.Cluster.on() }

// startCluster starts the master's side of the cluster when some Goer
// uses it (nil otherwise): internal/launch.
func startCluster(cfg *Config, goers []*Goer, log zerolog.Logger, upg *master.Upgrader) (*launch.Cluster, error) {
	for _, g := range goers {
		if clusterOn(cfg, g) {
			url := ""
			if cfg.Cluster != nil {
				url = cfg.Cluster.NATSURL
			}
			return launch.StartCluster(url, cfg.Cluster.prefix(), log, upg)
		}
	}
	return nil, nil
}
