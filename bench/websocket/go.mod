module goes-bench-ws

go 1.26.0

require (
	github.com/goes-project/goes v0.0.0
	github.com/rs/zerolog v1.35.1
)

require (
	github.com/gorilla/websocket v1.5.3
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/goes-project/goes => ../..
