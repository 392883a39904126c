package http_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goes-project/goes"
	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/protocols/http"
)

// A login form (urlencoded) and an upload form (multipart): PostForm is
// workerman's $request->post(), MultipartForm's files its
// $request->file(). The uploaded file is stored under a directory of the
// server's, by SafeFilename, never by the name as sent.
func ExampleRequest_MultipartForm() {
	goer := goes.NewGoer("127.0.0.1:8080", http.NewHttpProtocol(), "tcp")
	goer.OnMessage = func(c connections.Connection, body []byte) {
		req := http.RequestOf(c)
		switch req.Path() {
		case "/login":
			c.Send("hello, "+req.PostForm("user"), false)
		case "/upload":
			form, err := req.MultipartForm()
			if errors.Is(err, http.ErrBadForm) || errors.Is(err, http.ErrNotMultipart) {
				http.Respond(c, &http.Response{Status: 400, Body: []byte(err.Error())})
				return
			}
			f := form.File("photo")
			name := ""
			if f != nil {
				name = f.SafeFilename()
			}
			if name == "" {
				http.Respond(c, &http.Response{Status: 400, Body: []byte("no photo")})
				return
			}
			if err := os.WriteFile(filepath.Join("/srv/uploads", name), f.Data, 0o644); err != nil {
				http.Respond(c, &http.Response{Status: 500})
				return
			}
			c.Send(fmt.Sprintf("%s: %d bytes, %s", form.Value("title"), len(f.Data), f.ContentType), false)
		}
	}
	goer.RunAll()
}
