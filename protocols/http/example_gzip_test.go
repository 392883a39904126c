package http_test

import (
	"strings"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// Compression is a setting of the protocol: clients that accept gzip get
// the page coded, the others get it as it is.
func ExampleCompressOptions() {
	p := http.NewHttpProtocol()
	p.Compress = http.CompressOptions{Enabled: true} // text, JSON, JS, XML, SVG of 1 KiB and more
	page := strings.Repeat("<p>hello, goer</p>\n", 500)
	goer := goes.NewGoer("127.0.0.1:8080", p, "tcp")
	goer.OnMessage = func(c connections.Connection, body []byte) {
		c.Send(page, false) // Content-Encoding: gzip when Accept-Encoding allows it
	}
	goer.RunAll()
}
