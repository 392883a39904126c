package http_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/goes-project/goes/connections"
	"github.com/goes-project/goes/internal/testkit"
	"github.com/goes-project/goes/protocols/http"
)

// gzipPage is an HTML body well over the default MinSize.
var gzipPage = strings.Repeat("<tr><td>goes</td><td>a socket server framework</td></tr>\n", 200)

// gzipHandler answers "/page" with Send, "/json" and "/small" (under
// MinSize) with Respond, and "/png" with a body of a type not compressed.
func gzipHandler(t testing.TB) connections.Handler {
	return connections.Handler{
		OnMessage: func(c connections.Connection, body []byte) {
			var err error
			switch http.RequestOf(c).Path() {
			case "/page":
				err = c.Send(gzipPage, false)
			case "/json":
				err = http.Respond(c, &http.Response{ContentType: "application/json", Body: []byte(`{"page":"` + gzipPage + `"}`)})
			case "/small":
				err = http.Respond(c, &http.Response{ContentType: "text/plain", Body: []byte("small")})
			case "/png":
				err = http.Respond(c, &http.Response{ContentType: "image/png", Body: []byte(gzipPage)})
			default:
				err = http.Respond(c, &http.Response{Status: 404})
			}
			if err != nil {
				t.Errorf("answer: %v", err)
			}
		},
	}
}

func gzipProtocol() *http.Protocol {
	return &http.Protocol{Compress: http.CompressOptions{Enabled: true}}
}

func gunzip(t testing.TB, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(out)
}

// splitCurl splits what curl -D - printed into the head and the body.
func splitCurl(t testing.TB, out string) (head, body string) {
	t.Helper()
	head, body, ok := strings.Cut(out, "\r\n\r\n")
	if !ok {
		t.Fatalf("no head in %q", out)
	}
	return strings.ToLower(head), body
}

// TestGzipCurl fetches with curl, with and without --compressed.
func TestGzipCurl(t *testing.T) {
	ts := serve(t, testkit.Engines()[0], gzipProtocol(), 0, gzipHandler(t))
	base := "http://" + ts.addr
	head, body := splitCurl(t, curl(t, "--compressed", "-D", "-", base+"/page"))
	if !strings.Contains(head, "\r\ncontent-encoding: gzip") || !strings.Contains(head, "\r\nvary: accept-encoding") {
		t.Fatalf("--compressed: head %q", head)
	}
	if body != gzipPage {
		t.Fatalf("--compressed: body %d bytes, want %d", len(body), len(gzipPage))
	}
	head, body = splitCurl(t, curl(t, "-D", "-", base+"/page"))
	if strings.Contains(head, "content-encoding") || !strings.Contains(head, fmt.Sprintf("\r\ncontent-length: %d\r", len(gzipPage))) {
		t.Fatalf("plain: head %q", head)
	}
	if body != gzipPage {
		t.Fatalf("plain: body %d bytes, want %d", len(body), len(gzipPage))
	}
	// Several URLs on one connection, JSON coded, small and PNG not.
	out := curl(t, "--compressed", base+"/json", base+"/small", base+"/png")
	if want := `{"page":"` + gzipPage + `"}` + "small" + gzipPage; out != want {
		t.Fatalf("curl 3 URLs: %d bytes, want %d", len(out), len(want))
	}
}

// TestGzipNetHTTPClient uses Go's client, which asks for gzip and
// decodes it by itself.
func TestGzipNetHTTPClient(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, gzipProtocol(), 0, gzipHandler(t))
		tr := &nethttp.Transport{MaxIdleConnsPerHost: 1}
		t.Cleanup(tr.CloseIdleConnections)
		client := &nethttp.Client{Transport: tr, Timeout: ioTimeout}
		tests := []struct {
			path, body string
			coded      bool
		}{
			{"/page", gzipPage, true},
			{"/json", `{"page":"` + gzipPage + `"}`, true},
			{"/small", "small", false},
			{"/png", gzipPage, false},
		}
		for _, tc := range tests {
			resp, err := client.Get("http://" + ts.addr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			if string(b) != tc.body || resp.Uncompressed != tc.coded {
				t.Fatalf("%s: %d bytes (want %d), Uncompressed %v (want %v)", tc.path, len(b), len(tc.body), resp.Uncompressed, tc.coded)
			}
		}
	})
}

// TestGzipRaw checks the wire form over a raw socket, pipelined: coded
// and identity answers in the order of their requests, Content-Length of
// the coded body, Vary, and HEAD.
func TestGzipRaw(t *testing.T) {
	testkit.EachEngine(t, func(t *testing.T, e testkit.Engine) {
		ts := serve(t, e, gzipProtocol(), 0, gzipHandler(t))
		rc := dial(t, ts.addr)
		reqs := []struct {
			method, path, ae string
			coded, vary      bool
			body             string
		}{
			{"GET", "/page", "gzip", true, true, gzipPage},
			{"GET", "/page", "", false, true, gzipPage},
			{"GET", "/page", "gzip;q=0", false, true, gzipPage},
			{"GET", "/json", "br, GZIP;q=0.5", true, true, `{"page":"` + gzipPage + `"}`},
			{"GET", "/small", "gzip", false, false, "small"},
			{"GET", "/png", "gzip", false, false, gzipPage},
			{"HEAD", "/page", "gzip", false, true, ""},
			{"GET", "/page", "*", true, true, gzipPage},
		}
		var b strings.Builder
		for _, r := range reqs {
			fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\n", r.method, r.path)
			if r.ae != "" {
				fmt.Fprintf(&b, "Accept-Encoding: %s\r\n", r.ae)
			}
			b.WriteString("\r\n")
		}
		rc.write(b.String())
		for i, r := range reqs {
			resp, body := rc.response(r.method)
			name := fmt.Sprintf("%d %s %s %q", i, r.method, r.path, r.ae)
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) && r.method != "HEAD" {
				t.Fatalf("%s: status %d, Content-Length %d, body %d bytes", name, resp.StatusCode, resp.ContentLength, len(body))
			}
			if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != r.coded || (!r.coded && got != "") {
				t.Fatalf("%s: Content-Encoding %q", name, got)
			}
			if got := resp.Header.Get("Vary"); (got == "Accept-Encoding") != r.vary || (!r.vary && got != "") {
				t.Fatalf("%s: Vary %q", name, got)
			}
			if r.coded {
				if len(body) >= len(r.body) {
					t.Fatalf("%s: coded body %d bytes, plain %d", name, len(body), len(r.body))
				}
				body = gunzip(t, []byte(body))
			}
			if body != r.body {
				t.Fatalf("%s: body %d bytes, want %d", name, len(body), len(r.body))
			}
			if r.method == "HEAD" && resp.ContentLength != int64(len(gzipPage)) {
				t.Fatalf("%s: Content-Length %d, want the identity length %d", name, resp.ContentLength, len(gzipPage))
			}
		}
	})
}
