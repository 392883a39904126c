package http_test

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// A static file server: the request path is mapped to a name of the
// fs.FS safely, and ServeFile's errors become 404, 403 and 405.
func ExampleServeFile() {
	files := os.DirFS("/var/www")
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	goer.OnMessage = func(c connections.Connection, _ []byte) {
		name := strings.TrimPrefix(path.Clean("/"+http.RequestOf(c).Path()), "/")
		if name == "" {
			name = "index.html"
		}
		err := http.ServeFile(c, files, name)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			http.Respond(c, &http.Response{Status: 404, Body: []byte("not found")})
		case errors.Is(err, http.ErrIsDir):
			http.Respond(c, &http.Response{Status: 403, Body: []byte("forbidden")})
		case errors.Is(err, http.ErrFileMethod):
			http.Respond(c, &http.Response{Status: 405, Header: []http.Field{{Name: "Allow", Value: "GET, HEAD"}}})
		default:
			http.Respond(c, &http.Response{Status: 500, Body: []byte("cannot read the file")})
		}
	}
	goer.RunAll()
}
