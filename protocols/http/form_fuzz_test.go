package http

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzPostForm decodes an urlencoded body delivered whole and split in
// two reads, and compares it with net/url.ParseQuery wherever the two
// should agree. Deliberate differences: ParseQuery rejects (and drops) a
// parameter with an invalid escape or a ";" in its key, and returns an
// error; PostForm keeps invalid escapes as sent and takes ";" as an
// ordinary byte. So the comparison is made only when ParseQuery reports
// no error.
func FuzzPostForm(f *testing.F) {
	for _, s := range []string{
		"a=1&b=%20x&a=2", "+x+=a+b%2B", "k=%zz%4", "=v&flag&x=", "&&a=1&&", "a=1;b=2",
		"n=%E2%82%AC%00%FF", "%61=1&a=2", "a==b=c", "",
	} {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		raw := []byte(post(formCT, string(body)))
		at := int(split) % (len(raw) + 1)
		var whole, halves string
		for i, reads := range [][][]byte{{raw}, {raw[:at], raw[at:]}} {
			p := New()
			rt := &runtime{p: p, c: newTestConn(p)}
			var b strings.Builder
			rt.onMessage = func(r *Request, _ []byte) {
				var keys []string
				var dec []byte
				for k, v := range r.PostFormParams() {
					key := string(AppendUnescape(nil, k, true))
					dec = AppendUnescape(dec[:0], v, true)
					fmt.Fprintf(&b, "%q=%q\n", key, dec)
					if !slices.Contains(keys, key) {
						keys = append(keys, key)
					}
					if got := r.PostForm(key); !r.HasPostForm(key) || got != r.PostFormValues(key)[0] {
						t.Fatalf("PostForm(%q) = %q, values %q", key, got, r.PostFormValues(key))
					}
				}
				if i > 0 {
					return
				}
				want, err := url.ParseQuery(string(body))
				if err != nil {
					return
				}
				if len(want) != len(keys) {
					t.Fatalf("keys %q, ParseQuery %v", keys, want)
				}
				for k, vs := range want {
					if got := r.PostFormValues(k); !slices.Equal(got, vs) {
						t.Fatalf("PostFormValues(%q) = %q, ParseQuery %q", k, got, vs)
					}
				}
			}
			for _, rd := range reads {
				if err := rt.read(t, append([]byte(nil), rd...)); err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			if i == 0 {
				whole = b.String()
			} else {
				halves = b.String()
			}
		}
		if whole != halves {
			t.Fatalf("split at %d:\n%s\nwhole:\n%s", at, halves, whole)
		}
	})
}

// FuzzMultipartForm parses arbitrary bodies and boundaries with small
// limits, delivered whole and split in two reads: no panic, the same
// result both ways, an error is ErrBadForm or ErrNotMultipart, and a form
// stays within its limits (parts, and file data and values within the
// body's size).
func FuzzMultipartForm(f *testing.F) {
	for _, s := range []string{
		mpBody(false, "Content-Disposition: form-data; name=\"a\"\r\n\r\n1",
			"Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\r\n--\xff"),
		mpBody(true, "Content-Disposition: form-data; name=a\r\n\r\n1"),
		"--B\r\nContent-Disposition: form-da",
		"--B--\r\n",
		"preamble\r\n--B\r\nContent-Disposition: form-data; name=f; filename*=UTF-8''%E2%82%AC\r\n\r\n\r\n--B--",
		mpBody(false, "Content-Disposition: form-data; name=a\r\nX: "+strings.Repeat("p", 80)+"\r\n\r\n1"),
		mpBody(false, "Content-Disposition: form-data; name=a\r\n\r\n1", "Content-Disposition: form-data; name=a\r\n\r\n1",
			"Content-Disposition: form-data; name=a\r\n\r\n1", "Content-Disposition: form-data; name=a\r\n\r\n1"),
	} {
		f.Add([]byte(s), "B", uint16(len(s)/3))
	}
	f.Add([]byte("--x y\r\n\r\n--x y--"), "\"x y\"", uint16(3))
	lim := FormLimits{MaxParts: 3, MaxPartHeaderBytes: 100}
	f.Fuzz(func(t *testing.T, body []byte, boundary string, split uint16) {
		ct := "multipart/form-data; boundary=" + boundary
		for i := 0; i < len(ct); i++ {
			if !vchar[ct[i]] {
				return // not a valid field value: the request would be refused
			}
		}
		form, err := ParseMultipartForm(body, ct, lim)
		if err != nil {
			if form != nil || !errors.Is(err, ErrBadForm) && !errors.Is(err, ErrNotMultipart) {
				t.Fatalf("ParseMultipartForm = %v, %v", form, err)
			}
		} else {
			n, size := 0, 0
			for _, v := range form.Fields() {
				n++
				size += len(v)
			}
			for _, ff := range form.AllFiles() {
				n++
				size += len(ff.Data)
				if cap(ff.Data) != len(ff.Data) || ff.Filename == "" || ff.Name == "" {
					t.Fatalf("file %+v", ff)
				}
			}
			if n > lim.MaxParts || size > len(body) {
				t.Fatalf("%d parts, %d bytes of %d", n, size, len(body))
			}
		}
		want := "error"
		if err == nil {
			want = describeForm(form)
		}
		// The same body through the protocol, in two reads, with the
		// default limits (which accept whatever the small ones do).
		raw := []byte(post(ct, string(body)))
		at := int(split) % (len(raw) + 1)
		p := New()
		rt := &runtime{p: p, c: newTestConn(p)}
		rt.onMessage = func(r *Request, _ []byte) {
			f2, err2 := r.MultipartForm()
			if err == nil && (err2 != nil || describeForm(f2) != want) {
				t.Fatalf("via the protocol: %v %v, whole: %s", f2, err2, want)
			}
		}
		for _, rd := range [][]byte{raw[:at], raw[at:]} {
			if e := rt.read(t, append([]byte(nil), rd...)); e != nil {
				t.Fatalf("read (split %d of %s): %v", at, strconv.Quote(string(raw)), e)
			}
		}
	})
}
