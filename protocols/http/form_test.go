package http

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// withRequest delivers the request raw through Input and Decode (as the
// runtime does) and calls fn with it inside the delivery, where it is
// valid. It fails tb unless exactly one request is delivered.
func withRequest(tb testing.TB, raw string, fn func(r *Request)) {
	tb.Helper()
	p := New()
	rt := &runtime{p: p, c: newTestConn(p)}
	n := 0
	rt.onMessage = func(r *Request, _ []byte) { n++; fn(r) }
	if err := rt.read(tb, []byte(raw)); err != nil {
		tb.Fatalf("read: %v", err)
	}
	if n != 1 {
		tb.Fatalf("%d requests delivered", n)
	}
}

// post is a POST with Content-Type ct (none when empty) and body.
func post(ct, body string) string {
	h := "POST /f HTTP/1.1\r\nHost: a\r\n"
	if ct != "" {
		h += "Content-Type: " + ct + "\r\n"
	}
	return h + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

const formCT = "application/x-www-form-urlencoded"

func TestPostForm(t *testing.T) {
	type lookup struct {
		key    string
		first  string
		values []string
	}
	cases := []struct {
		name   string
		ct     string
		body   string
		params [][2]string // as sent
		look   []lookup
	}{
		{name: "repeated", ct: formCT, body: "a=1&b=%20x&a=2",
			params: [][2]string{{"a", "1"}, {"b", "%20x"}, {"a", "2"}},
			look:   []lookup{{"a", "1", []string{"1", "2"}}, {"b", " x", []string{" x"}}, {"c", "", nil}}},
		{name: "plus-is-space", ct: formCT, body: "+x+=a+b%2B",
			look: []lookup{{" x ", "a b+", []string{"a b+"}}, {"+x+", "", nil}}},
		{name: "escaped-key", ct: formCT, body: "%61%5B%5D=1&a%5b%5d=2",
			look: []lookup{{"a[]", "1", []string{"1", "2"}}}},
		{name: "invalid-escapes-kept", ct: formCT, body: "k=%zz%4&j=100%&%=%%",
			look: []lookup{{"k", "%zz%4", []string{"%zz%4"}}, {"j", "100%", []string{"100%"}}, {"%", "%%", []string{"%%"}}}},
		{name: "empty-key-and-no-equals", ct: formCT, body: "=v&flag&x=",
			params: [][2]string{{"", "v"}, {"flag", ""}, {"x", ""}},
			look:   []lookup{{"", "v", []string{"v"}}, {"flag", "", []string{""}}, {"x", "", []string{""}}}},
		{name: "empty-elements-skipped", ct: formCT, body: "&&a=1&&",
			params: [][2]string{{"a", "1"}}},
		{name: "semicolon-not-separator", ct: formCT, body: "a=1;b=2",
			look: []lookup{{"a", "1;b=2", []string{"1;b=2"}}, {"b", "", nil}}},
		{name: "utf8-bytes", ct: formCT, body: "n=%E2%82%AC%00%FF",
			look: []lookup{{"n", "€\x00\xff", []string{"€\x00\xff"}}}},
		{name: "charset-param-and-case", ct: "Application/X-WWW-Form-URLEncoded ; charset=UTF-8", body: "a=1",
			look: []lookup{{"a", "1", []string{"1"}}}},
		{name: "other-type", ct: "text/plain", body: "a=1",
			params: [][2]string{}, look: []lookup{{"a", "", nil}}},
		{name: "no-type", body: "a=1",
			params: [][2]string{}, look: []lookup{{"a", "", nil}}},
		{name: "prefix-type", ct: formCT + "x", body: "a=1",
			params: [][2]string{}, look: []lookup{{"a", "", nil}}},
		{name: "empty-body", ct: formCT,
			params: [][2]string{}, look: []lookup{{"a", "", nil}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withRequest(t, post(tc.ct, tc.body), func(r *Request) {
				if tc.params != nil {
					got := [][2]string{}
					for k, v := range r.PostFormParams() {
						got = append(got, [2]string{string(k), string(v)})
					}
					if !slices.Equal(got, tc.params) {
						t.Errorf("PostFormParams = %q, want %q", got, tc.params)
					}
				}
				for _, l := range tc.look {
					if got := r.PostForm(l.key); got != l.first {
						t.Errorf("PostForm(%q) = %q, want %q", l.key, got, l.first)
					}
					if got := r.PostFormValues(l.key); !slices.Equal(got, l.values) {
						t.Errorf("PostFormValues(%q) = %q, want %q", l.key, got, l.values)
					}
					if got := r.HasPostForm(l.key); got != (l.values != nil) {
						t.Errorf("HasPostForm(%q) = %v", l.key, got)
					}
					got, ok := r.AppendPostForm([]byte("pre:"), l.key)
					if string(got) != "pre:"+l.first || ok != (l.values != nil) {
						t.Errorf("AppendPostForm(%q) = %q, %v", l.key, got, ok)
					}
				}
				// The query is not the form.
				if r.Query("a") != "" {
					t.Errorf("Query(a) = %q", r.Query("a"))
				}
			})
		})
	}
}

// TestPostFormChunked reads a form sent with chunked transfer coding.
func TestPostFormChunked(t *testing.T) {
	raw := "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: " + formCT + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3\r\na=1\r\n5\r\n&b=%2\r\n1\r\n0\r\n0\r\n\r\n"
	withRequest(t, raw, func(r *Request) {
		if r.PostForm("a") != "1" || r.PostForm("b") != " " {
			t.Fatalf("a=%q b=%q", r.PostForm("a"), r.PostForm("b"))
		}
	})
}

func TestPostFormAllocs(t *testing.T) {
	withRequest(t, post(formCT, "a=1&b=%20x&c=hello+world"), func(r *Request) {
		buf := make([]byte, 0, 64)
		if n := testing.AllocsPerRun(100, func() {
			buf, _ = r.AppendPostForm(buf[:0], "c")
			_ = r.IsPostForm()
		}); n != 0 {
			t.Errorf("AppendPostForm allocates %v times", n)
		}
		if n := testing.AllocsPerRun(100, func() { _ = r.PostForm("c") }); n != 1 {
			t.Errorf("PostForm allocates %v times, want 1", n)
		}
	})
}

// mpBody builds a multipart body with boundary "B" from raw parts (header
// lines and content), closed unless open.
func mpBody(open bool, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--B\r\n" + p + "\r\n")
	}
	if !open {
		b.WriteString("--B--\r\n")
	}
	return b.String()
}

const mpCT = "multipart/form-data; boundary=B"

// describeForm prints a form for comparisons.
func describeForm(f *MultipartForm) string {
	var b strings.Builder
	for k, v := range f.Fields() {
		fmt.Fprintf(&b, "v %q=%q\n", k, v)
	}
	for _, ff := range f.AllFiles() {
		fmt.Fprintf(&b, "f %q file=%q type=%q data=%q\n", ff.Name, ff.Filename, ff.ContentType, ff.Data)
	}
	return b.String()
}

func TestMultipartForm(t *testing.T) {
	many := make([]string, 1001)
	for i := range many {
		many[i] = "Content-Disposition: form-data; name=p\r\n\r\nx"
	}
	cases := []struct {
		name string
		ct   string
		body string
		lim  FormLimits
		want string // describeForm, or "error: " + the sentinel
	}{
		{name: "values-and-files", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=\"a\"\r\n\r\n1",
			"Content-Disposition: form-data; name=\"up\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\r\n--\xff",
			"Content-Disposition: form-data; name=\"a\"\r\n\r\n2\r\nline2",
			"Content-Disposition: form-data; name=\"up\"; filename=\"y.txt\"\r\n\r\n",
		), want: "v \"a\"=\"1\"\nv \"a\"=\"2\\r\\nline2\"\n" +
			"f \"up\" file=\"x.bin\" type=\"application/octet-stream\" data=\"\\x00\\r\\n--\\xff\"\n" +
			"f \"up\" file=\"y.txt\" type=\"\" data=\"\"\n"},
		{name: "filename-as-sent", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=f; filename=\"../../etc/passwd\"\r\n\r\nroot",
		), want: "f \"f\" file=\"../../etc/passwd\" type=\"\" data=\"root\"\n"},
		{name: "filename-rfc2231", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=f; filename*=UTF-8''%E2%82%AC.txt\r\n\r\neuro",
		), want: "f \"f\" file=\"€.txt\" type=\"\" data=\"euro\"\n"},
		{name: "empty-filename-is-value", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=f; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		), want: "v \"f\"=\"\"\n"},
		{name: "transfer-encoding-not-decoded", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3D1",
		), want: "v \"q\"=\"a=3D1\"\n"},
		{name: "unnamed-and-other-disposition-skipped", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data\r\n\r\nx",
			"Content-Disposition: attachment; name=a\r\n\r\nx",
			"Content-Type: text/plain\r\n\r\nx",
			"Content-Disposition: form-data; name=b\r\n\r\ny",
		), want: "v \"b\"=\"y\"\n"},
		{name: "preamble-and-epilogue", ct: "Multipart/Form-Data; charset=x; boundary=\"B\"",
			body: "preamble\r\n" + mpBody(false, "Content-Disposition: form-data; name=a\r\n\r\n1") + "epilogue",
			want: "v \"a\"=\"1\"\n"},
		{name: "no-parts", ct: mpCT, body: "--B--\r\n", want: ""},
		{name: "1000-parts", ct: mpCT, body: mpBody(false, many[:1000]...), want: strings.Repeat("v \"p\"=\"x\"\n", 1000)},

		{name: "not-multipart", ct: formCT, body: "a=1", want: "error: " + ErrNotMultipart.Error()},
		{name: "no-content-type", body: "a=1", want: "error: " + ErrNotMultipart.Error()},
		{name: "mixed", ct: "multipart/mixed; boundary=B", body: mpBody(false), want: "error: " + ErrNotMultipart.Error()},
		{name: "no-boundary", ct: "multipart/form-data", body: mpBody(false), want: "error: " + ErrBadForm.Error()},
		{name: "empty-boundary", ct: "multipart/form-data; boundary=\"\"", body: mpBody(false), want: "error: " + ErrBadForm.Error()},
		{name: "boundary-too-long", ct: "multipart/form-data; boundary=" + strings.Repeat("b", 71), body: "", want: "error: " + ErrBadForm.Error()},
		{name: "boundary-bad-char", ct: "multipart/form-data; boundary=\"a\\\"b\"", body: "", want: "error: " + ErrBadForm.Error()},
		{name: "bad-params", ct: "multipart/form-data; boundary", body: mpBody(false), want: "error: " + ErrBadForm.Error()},
		{name: "wrong-boundary", ct: "multipart/form-data; boundary=C", body: mpBody(false, "Content-Disposition: form-data; name=a\r\n\r\n1"), want: "error: " + ErrBadForm.Error()},
		{name: "empty-body", ct: mpCT, body: "", want: "error: " + ErrBadForm.Error()},
		{name: "no-close-delimiter", ct: mpCT, body: mpBody(true, "Content-Disposition: form-data; name=a\r\n\r\n1"), want: "error: " + ErrBadForm.Error()},
		{name: "truncated-in-header", ct: mpCT, body: "--B\r\nContent-Disposition: form-da", want: "error: " + ErrBadForm.Error()},
		{name: "truncated-in-data", ct: mpCT, body: "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nabc", want: "error: " + ErrBadForm.Error()},
		{name: "malformed-part-header", ct: mpCT, body: mpBody(false, "no colon here\r\n\r\nx"), want: "error: " + ErrBadForm.Error()},
		{name: "part-header-too-long", ct: mpCT, body: mpBody(false,
			"Content-Disposition: form-data; name=a\r\nX-Pad: "+strings.Repeat("p", 8<<10)+"\r\n\r\n1"), want: "error: " + ErrBadForm.Error()},
		{name: "part-header-limit", ct: mpCT, lim: FormLimits{MaxPartHeaderBytes: 100}, body: mpBody(false,
			"Content-Disposition: form-data; name=a\r\nX-Pad: "+strings.Repeat("p", 60)+"\r\n\r\n1"), want: "error: " + ErrBadForm.Error()},
		{name: "too-many-parts", ct: mpCT, body: mpBody(false, many...), want: "error: " + ErrBadForm.Error()},
		{name: "parts-limit", ct: mpCT, lim: FormLimits{MaxParts: 2}, body: mpBody(false, many[:3]...), want: "error: " + ErrBadForm.Error()},
		{name: "parts-limit-exact", ct: mpCT, lim: FormLimits{MaxParts: 2}, body: mpBody(false, many[:2]...), want: strings.Repeat("v \"p\"=\"x\"\n", 2)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := func(f *MultipartForm, err error) {
				t.Helper()
				var got string
				if err != nil {
					if f != nil {
						t.Errorf("form %v with error %v", f, err)
					}
					switch {
					case errors.Is(err, ErrBadForm):
						got = "error: " + ErrBadForm.Error()
					case errors.Is(err, ErrNotMultipart):
						got = "error: " + ErrNotMultipart.Error()
					default:
						t.Fatalf("error %v is neither ErrBadForm nor ErrNotMultipart", err)
					}
				} else {
					got = describeForm(f)
				}
				if got != tc.want {
					t.Errorf("got %q (%v), want %q", got, err, tc.want)
				}
			}
			check(ParseMultipartForm([]byte(tc.body), tc.ct, tc.lim))
			if tc.lim == (FormLimits{}) {
				withRequest(t, post(tc.ct, tc.body), func(r *Request) {
					f1, err1 := r.MultipartForm()
					check(f1, err1)
					f2, err2 := r.MultipartForm()
					if f1 != f2 || err1 != err2 {
						t.Errorf("second call: %p %v, first %p %v", f2, err2, f1, err1)
					}
				})
			}
		})
	}
}

// TestMultipartFormOutlivesRequest checks that a form (and its files'
// Data) stays intact after the request buffer is reused, and that the
// cached form is dropped with the request.
func TestMultipartFormOutlivesRequest(t *testing.T) {
	p := New()
	rt := &runtime{p: p, c: newTestConn(p)}
	var forms []*MultipartForm
	rt.onMessage = func(r *Request, _ []byte) {
		f, err := r.MultipartForm()
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, f)
	}
	one := post(mpCT, mpBody(false, "Content-Disposition: form-data; name=f; filename=a\r\n\r\nfirst file"))
	two := post(mpCT, mpBody(false, "Content-Disposition: form-data; name=f; filename=b\r\n\r\nSECOND FILE"))
	for _, raw := range []string{one, two} {
		b := []byte(raw)
		if err := rt.read(t, b); err != nil {
			t.Fatal(err)
		}
		clear(b)
	}
	if len(forms) != 2 || forms[0] == forms[1] {
		t.Fatalf("forms %v", forms)
	}
	if d := string(forms[0].File("f").Data); d != "first file" {
		t.Errorf("first form's file now %q", d)
	}
	if d := string(forms[1].File("f").Data); d != "SECOND FILE" {
		t.Errorf("second form's file %q", d)
	}
}

// TestMultipartFormWriter reads what mime/multipart's Writer writes.
func TestMultipartFormWriter(t *testing.T) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("name", "goer")
	w.WriteField("name", "second\r\n--not a boundary")
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	fw, _ := w.CreateFormFile("bin", "all.bin")
	fw.Write(all)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="doc"; filename="a \"quoted\" name.txt"`)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Extra", "1")
	fw, _ = w.CreatePart(h)
	fw.Write([]byte("text\n"))
	w.Close()
	f, err := ParseMultipartForm(b.Bytes(), w.FormDataContentType(), FormLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Values("name"); !slices.Equal(got, []string{"goer", "second\r\n--not a boundary"}) {
		t.Errorf("name = %q", got)
	}
	if bf := f.File("bin"); bf == nil || !bytes.Equal(bf.Data, all) || bf.Filename != "all.bin" || bf.ContentType != "application/octet-stream" {
		t.Errorf("bin = %+v", bf)
	}
	df := f.File("doc")
	if df == nil || string(df.Data) != "text\n" || df.Filename != `a "quoted" name.txt` || df.ContentType != "text/plain; charset=utf-8" || df.Header.Get("X-Extra") != "1" {
		t.Errorf("doc = %+v", df)
	}
	if f.File("name") != nil || f.Value("bin") != "" || len(f.Files("bin")) != 1 || f.Files("none") != nil || f.Values("none") != nil {
		t.Error("lookups mix values and files")
	}
	if cap(df.Data) != len(df.Data) {
		t.Errorf("Data capacity %d > length %d", cap(df.Data), len(df.Data))
	}
}

func TestSafeFilename(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a.txt", "a.txt"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\x\photo.jpg`, "photo.jpg"},
		{"dir/", ""},
		{"..", ""},
		{".", ""},
		{"", ""},
		{"/", ""},
		{"a\x00b\nc.txt", "abc.txt"},
		{" spaced name.txt ", "spaced name.txt"},
		{"€ résumé.pdf", "€ résumé.pdf"},
		{"..\\..\\win.ini", "win.ini"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := (&FormFile{Filename: tc.in}).SafeFilename(); got != tc.want {
				t.Errorf("SafeFilename(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
