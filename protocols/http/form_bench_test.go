package http

import (
	"bytes"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
)

const benchForm = "name=goer&email=goer%40example.com&age=42&city=Hang+Zhou&lang=go" +
	"&token=0123456789abcdef&remember=on&page=3&sort=desc&q=hello+world%21"

// BenchmarkPostForm looks up one field (the last) of a 10-field urlencoded
// body, against net/url.ParseQuery of the same body and a map lookup.
func BenchmarkPostForm(b *testing.B) {
	b.Run("impl=goes-PostForm", func(b *testing.B) {
		withRequest(b, post(formCT, benchForm), func(r *Request) {
			b.SetBytes(int64(len(benchForm)))
			b.ReportAllocs()
			for b.Loop() {
				if r.PostForm("q") != "hello world!" {
					b.Fatal("wrong value")
				}
			}
		})
	})
	b.Run("impl=goes-AppendPostForm", func(b *testing.B) {
		withRequest(b, post(formCT, benchForm), func(r *Request) {
			b.SetBytes(int64(len(benchForm)))
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for b.Loop() {
				buf, _ = r.AppendPostForm(buf[:0], "q")
			}
			if string(buf) != "hello world!" {
				b.Fatal("wrong value")
			}
		})
	})
	b.Run("impl=net-url-ParseQuery", func(b *testing.B) {
		b.SetBytes(int64(len(benchForm)))
		b.ReportAllocs()
		for b.Loop() {
			v, err := url.ParseQuery(benchForm)
			if err != nil || v.Get("q") != "hello world!" {
				b.Fatal("wrong value")
			}
		}
	})
}

func benchMultipart(tb testing.TB) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	w.WriteField("title", "holiday photos")
	w.WriteField("album", "2025")
	fw, err := w.CreateFormFile("photo", "beach.jpg")
	if err != nil {
		tb.Fatal(err)
	}
	fw.Write([]byte(strings.Repeat("\xff\xd8binary jpeg data ", 256)))
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// BenchmarkMultipartForm parses a 3-part body (two values, a 4.5 KiB
// file), against mime/multipart.Reader.ReadForm of the same body (kept in
// memory: maxMemory over the body's size).
func BenchmarkMultipartForm(b *testing.B) {
	body, ct := benchMultipart(b)
	b.Run("impl=goes", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := ParseMultipartForm(body, ct, FormLimits{})
			if err != nil || f.File("photo") == nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=mime-multipart-ReadForm", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		boundary := ct[strings.Index(ct, "boundary=")+len("boundary="):]
		for b.Loop() {
			f, err := multipart.NewReader(bytes.NewReader(body), boundary).ReadForm(1 << 20)
			if err != nil || len(f.File["photo"]) != 1 {
				b.Fatal(err)
			}
		}
	})
}
