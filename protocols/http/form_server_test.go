package http_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// formHandler echoes what it parsed: /urlencoded the decoded parameters
// ("name=value" lines, in order); /multipart the values ("v name=value")
// and the files ("f name filename type hex(data)"), 400 with the error
// for ErrBadForm, 415 for ErrNotMultipart; anything else "ok".
func formHandler(t testing.TB) connections.Handler {
	return connections.Handler{
		OnMessage: func(c connections.Connection, _ []byte) {
			r := http.RequestOf(c)
			resp := &http.Response{ContentType: "text/plain", Header: []http.Field{{Name: "X-Chunked", Value: strconv.FormatBool(r.Chunked())}}}
			switch r.Path() {
			case "/urlencoded":
				var b []byte
				for k, v := range r.PostFormParams() {
					b = http.AppendUnescape(b, k, true)
					b = append(b, '=')
					b = http.AppendUnescape(b, v, true)
					b = append(b, '\n')
				}
				resp.Body = b
			case "/multipart":
				f, err := r.MultipartForm()
				switch {
				case errors.Is(err, http.ErrBadForm):
					resp.Status, resp.Body = 400, []byte(err.Error())
				case errors.Is(err, http.ErrNotMultipart):
					resp.Status, resp.Body = 415, []byte(err.Error())
				case err != nil:
					resp.Status, resp.Body = 500, []byte(err.Error())
				default:
					resp.Body = []byte(describe(f))
				}
			default:
				resp.Body = []byte("ok")
			}
			if err := http.Respond(c, resp); err != nil {
				t.Errorf("respond: %v", err)
			}
		},
	}
}

func describe(f *http.MultipartForm) string {
	var b strings.Builder
	for k, v := range f.Fields() {
		fmt.Fprintf(&b, "v %s=%s\n", k, v)
	}
	for _, ff := range f.AllFiles() {
		fmt.Fprintf(&b, "f %s %s %s %s\n", ff.Name, ff.Filename, ff.ContentType, hex.EncodeToString(ff.Data))
	}
	return b.String()
}

func fileLine(name, filename, ctype string, data []byte) string {
	return fmt.Sprintf("f %s %s %s %s\n", name, filename, ctype, hex.EncodeToString(data))
}

// uploadFiles writes a binary file holding every byte value (four
// times) and a text file into a temporary directory.
func uploadFiles(t testing.TB) (binPath string, bin []byte, txtPath string, txt []byte) {
	t.Helper()
	dir := t.TempDir()
	bin = make([]byte, 1024)
	for i := range bin {
		bin[i] = byte(i)
	}
	txt = []byte(strings.Repeat("line of text, ünïcode €\r\n--not-a-boundary\n", 50))
	binPath, txtPath = filepath.Join(dir, "all.bin"), filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(binPath, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(txtPath, txt, 0o600); err != nil {
		t.Fatal(err)
	}
	return binPath, bin, txtPath, txt
}

// TestFormCurl posts forms with curl: -d, --data-urlencode, -F with a
// binary and a text file, and the same -F upload chunked.
func TestFormCurl(t *testing.T) {
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, formHandler(t))
	base := "http://" + ts.addr
	if got, want := curl(t, "-d", "a=1&b=%20x&a=2", base+"/urlencoded"), "a=1\nb= x\na=2\n"; got != want {
		t.Errorf("curl -d: %q, want %q", got, want)
	}
	msg := "hello world & more=+% ünï\x01"
	if got, want := curl(t, "--data-urlencode", "msg="+msg, "--data-urlencode", "k=v", base+"/urlencoded"), "msg="+msg+"\nk=v\n"; got != want {
		t.Errorf("curl --data-urlencode: %q, want %q", got, want)
	}
	binPath, bin, txtPath, txt := uploadFiles(t)
	want := "v field=value\nv other=two words\n" +
		fileLine("file", "all.bin", "application/octet-stream", bin) +
		fileLine("doc", "notes.txt", "text/plain", txt)
	args := []string{"-F", "field=value", "-F", "file=@" + binPath, "-F", "other=two words", "-F", "doc=@" + txtPath + ";type=text/plain"}
	if got := curl(t, append(args, base+"/multipart")...); got != want {
		t.Errorf("curl -F:\n%.300q\nwant\n%.300q", got, want)
	}
	if got := curl(t, append(args, "-H", "Transfer-Encoding: chunked", "-w", "%header{x-chunked}", base+"/multipart")...); got != want+"true" {
		t.Errorf("curl -F chunked:\n%.300q\nwant\n%.300q", got, want)
	}
	// A urlencoded body is not a multipart form.
	if got := curl(t, "-w", "%{http_code}", "-d", "a=1", base+"/multipart"); !strings.HasSuffix(got, "415") {
		t.Errorf("curl -d to /multipart: %q", got)
	}
}

// TestFormNetHTTPClient posts a multipart form with several files,
// written by mime/multipart.Writer, with Go's client over one connection,
// then a urlencoded form.
func TestFormNetHTTPClient(t *testing.T) {
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, formHandler(t))
	client := newClient(t)
	_, bin, _, txt := uploadFiles(t)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	var want strings.Builder
	for i := range 3 {
		v := "value " + strconv.Itoa(i)
		w.WriteField("v", v)
		want.WriteString("v v=" + v + "\n")
	}
	var files strings.Builder
	for i, data := range [][]byte{bin, txt, nil, bytes.Repeat(bin, 64)} {
		name := fmt.Sprintf("file%d.dat", i)
		fw, err := w.CreateFormFile("up", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
		files.WriteString(fileLine("up", name, "application/octet-stream", data))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want.WriteString(files.String())
	for range 2 { // the second on the kept-alive connection
		resp, err := client.Post("http://"+ts.addr+"/multipart", w.FormDataContentType(), bytes.NewReader(body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(got) != want.String() {
			t.Fatalf("multipart post: %d %v\n%.400q\nwant\n%.400q", resp.StatusCode, err, got, want.String())
		}
	}
	resp, err := client.PostForm("http://"+ts.addr+"/urlencoded", map[string][]string{"x": {"1 2", "&="}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "x=1 2\nx=&=\n" {
		t.Fatalf("PostForm: %q", got)
	}
}

// TestFormMalformedOverSocket sends malformed multipart bodies on one
// connection: the handler answers each with 400 and the connection goes
// on serving.
func TestFormMalformedOverSocket(t *testing.T) {
	ts := serve(t, testkit.Engine{Name: connections.EngineAuto}, http.New(), 0, formHandler(t))
	part := "--B\r\nContent-Disposition: form-data; name=p\r\n\r\nx\r\n"
	cases := []struct {
		name, ct, body, reason string
	}{
		{"no-boundary", "multipart/form-data", part + "--B--\r\n", "boundary"},
		{"bad-boundary", "multipart/form-data; boundary=\"a\\\"b\"", part + "--B--\r\n", "boundary"},
		{"truncated-header", "multipart/form-data; boundary=B", part[:len(part)-4], "part 0"},
		{"truncated-data", "multipart/form-data; boundary=B", part + "--B\r\nContent-Disposition: form-data; name=q\r\n\r\nabc", "EOF"},
		{"no-close", "multipart/form-data; boundary=B", part, "EOF"},
		{"header-too-long", "multipart/form-data; boundary=B",
			"--B\r\nContent-Disposition: form-data; name=p\r\nX-Pad: " + strings.Repeat("p", 9<<10) + "\r\n\r\nx\r\n--B--\r\n", "header of"},
		{"too-many-parts", "multipart/form-data; boundary=B", strings.Repeat(part, 1001) + "--B--\r\n", "more than 1000 parts"},
	}
	rc := dial(t, ts.addr)
	for _, tc := range cases {
		rc.write(fmt.Sprintf("POST /multipart HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", tc.ct, len(tc.body), tc.body))
		resp, body := rc.response("POST")
		if resp.StatusCode != 400 || !strings.Contains(body, http.ErrBadForm.Error()) || !strings.Contains(body, tc.reason) {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, body)
		}
	}
	body := strings.Repeat(part, 1000) + "--B--\r\n"
	rc.write(fmt.Sprintf("POST /multipart HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	if resp, got := rc.response("POST"); resp.StatusCode != 200 || got != strings.Repeat("v p=x\n", 1000) {
		t.Fatalf("valid form after the bad ones: %d %.100q", resp.StatusCode, got)
	}
	rc.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, got := rc.response("GET"); resp.StatusCode != 200 || got != "ok" {
		t.Fatalf("GET after the bad forms: %d %q", resp.StatusCode, got)
	}
}
