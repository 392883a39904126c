// Command goes-master runs a goes master and its workers from a config
// file, or, without one, the embedded default: HTTP hello on
// 127.0.0.1:8080, WebSocket echo on :8081, text echo on :8082 and UDP echo
// on :8083, and the admin endpoint (metrics, probes, profiles) on
// 127.0.0.1:8084.
//
//	go run ./cmd/goes-master start
//	go run ./cmd/goes-master status
//	go run ./cmd/goes-master stop
//
// Build with -ldflags "-X main.version=1.2.3" to set the version.
package main

import "github.com/goes-project/goes/cmd/goes-master/app"

var version = "dev"

func main() { app.Main(version) }
