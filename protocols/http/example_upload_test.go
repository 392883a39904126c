package http_test

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols"
	"github.com/goes-project/goes/protocols/http"
)

// Uploads of any size to /upload, hashed as they arrive: StreamBody says
// which requests have their bodies streamed, OnMessage gets the pieces
// and answers on the last one. Other requests come whole, as always.
func ExampleProtocol_StreamBody() {
	p := http.NewHttpProtocol()
	p.StreamBody = func(c protocols.Conn, req *http.Request) bool {
		return req.Method() == "PUT" && req.Path() == "/upload" && req.ContentLength() <= 1<<30
	}
	goer := goes.NewGoer("127.0.0.1:8080", p, "tcp")
	goer.OnMessage = func(c connections.Connection, data []byte) {
		req := http.RequestOf(c)
		if !req.Streamed() {
			c.Send("hello, goer", false)
			return
		}
		h, _ := c.Context().(hash.Hash)
		if h == nil {
			h = sha256.New()
			c.SetContext(h)
		}
		h.Write(data)
		if req.BodyDone() {
			c.Send(hex.EncodeToString(h.Sum(nil)), false)
			c.SetContext(nil)
		}
	}
	goer.RunAll()
}
