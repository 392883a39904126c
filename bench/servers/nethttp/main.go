// Command nethttp is the net/http peer of the harness: an HTTP/1.1 server
// answering every request with the 5-byte body.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	body := []byte("hello")
	log.Fatal(http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Server", "goes\\0.1")
		w.Write(body)
	})))
}
