// Command fasthttp is the fasthttp peer of the harness: an HTTP/1.1
// server answering every request with the 5-byte body.
package main

import (
	"log"
	"os"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	body := []byte("hello")
	s := &fasthttp.Server{
		Name: "goes\\0.1",
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetBody(body)
		},
	}
	log.Fatal(s.ListenAndServe(addr))
}
