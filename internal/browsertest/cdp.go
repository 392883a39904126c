//go:build unix

package browsertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// callTimeout bounds one DevTools command.
const callTimeout = 30 * time.Second

// Browser is headless Chromium driven over its DevTools protocol, for the
// tests that act in pages as a person would (fill in a form, press a
// button, read what the page shows) and take screenshots. Its methods and
// its Pages' are safe for concurrent use.
type Browser struct {
	cmd    *exec.Cmd
	exited chan error
	stderr *lockedWriter
	conn   *websocket.Conn

	mu     sync.Mutex
	seq    int64
	calls  map[int64]chan reply
	errs   map[string][]string // per session: exceptions and console errors
	gone   chan struct{}       // closed when the DevTools connection is gone
	goneBy error
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Start starts headless Chromium with its DevTools endpoint on a free
// loopback port. A browser that dies before it listens is started again,
// three times at most. t.Cleanup kills it and its process group; when t
// failed, it logs what the pages threw or wrote as console errors.
func Start(t testing.TB) *Browser {
	t.Helper()
	bin, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		b, err := start(t, bin)
		if err == nil {
			return b
		}
		if attempt == 3 {
			t.Fatalf("chromium: %v", err)
		}
		t.Logf("chromium did not start (attempt %d): %v", attempt, err)
	}
}

func start(t testing.TB, bin string) (*Browser, error) {
	dir := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--disable-crash-reporter", "--hide-scrollbars",
		// Every page of a test runs its timers at full speed.
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--disable-backgrounding-occluded-windows",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+dir, "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b := &Browser{cmd: cmd, exited: make(chan error, 1), stderr: &lockedWriter{},
		calls: map[int64]chan reply{}, errs: map[string][]string{}, gone: make(chan struct{})}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { b.exited <- cmd.Wait() }()
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := <-b.exited
		b.exited <- err
	}
	// Chromium writes its port and path to DevToolsActivePort once it
	// listens.
	var url string
	deadline := time.Now().Add(30 * time.Second)
	for url == "" {
		if data, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort")); err == nil {
			if port, path, ok := strings.Cut(strings.TrimSpace(string(data)), "\n"); ok {
				url = "ws://127.0.0.1:" + port + path
				break
			}
		}
		select {
		case err := <-b.exited:
			b.exited <- err
			return nil, fmt.Errorf("exited before listening: %v\n%s", err, b.stderrText())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return nil, fmt.Errorf("no DevTools endpoint within 30 s\n%s", b.stderrText())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		kill()
		return nil, fmt.Errorf("dial %s: %v", url, err)
	}
	conn.SetReadLimit(64 << 20) // screenshots
	b.conn = conn
	go b.read()
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			for s, errs := range b.errs {
				t.Logf("page %s: %s", s, strings.Join(errs, "\n"))
			}
			b.mu.Unlock()
		}
		conn.CloseNow()
		kill()
	})
	return b, nil
}

func (b *Browser) stderrText() string {
	b.stderr.mu.Lock()
	defer b.stderr.mu.Unlock()
	return b.stderr.buf.String()
}

// lockedWriter is the browser's stderr, which the test may read while
// the browser writes.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// read dispatches the answers to their calls and keeps the pages' errors.
func (b *Browser) read() {
	for {
		_, data, err := b.conn.Read(context.Background())
		if err != nil {
			b.mu.Lock()
			b.goneBy = err
			close(b.gone)
			b.mu.Unlock()
			return
		}
		var m struct {
			ID        int64           `json:"id"`
			SessionID string          `json:"sessionId"`
			Method    string          `json:"method"`
			Params    json.RawMessage `json:"params"`
			reply
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.calls[m.ID]; ch != nil {
				delete(b.calls, m.ID)
				ch <- m.reply
			}
		} else if msg := pageError(m.Method, m.Params); msg != "" {
			b.errs[m.SessionID] = append(b.errs[m.SessionID], msg)
		}
		b.mu.Unlock()
	}
}

// pageError is what a Runtime event says went wrong in a page, or "".
func pageError(method string, params json.RawMessage) string {
	switch method {
	case "Runtime.exceptionThrown":
		var p struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		json.Unmarshal(params, &p)
		return "exception: " + p.Details.Text + " " + p.Details.Exception.Description
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value any `json:"value"`
			} `json:"args"`
		}
		json.Unmarshal(params, &p)
		if p.Type != "error" && p.Type != "warning" {
			return ""
		}
		return fmt.Sprintf("console.%s: %v", p.Type, p.Args)
	}
	return ""
}

// call runs a DevTools command (in a page's session, or the browser's
// with session "") and decodes its result into result (nil: ignored).
func (b *Browser) call(session, method string, params, result any) error {
	b.mu.Lock()
	b.seq++
	id := b.seq
	ch := make(chan reply, 1)
	b.calls[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.calls, id)
		b.mu.Unlock()
	}()
	if params == nil {
		params = struct{}{}
	}
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := b.conn.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, r.Error.Message, r.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-b.gone:
		return fmt.Errorf("%s: devtools connection gone: %v", method, b.goneBy)
	case <-ctx.Done():
		return fmt.Errorf("%s: no answer within %v", method, callTimeout)
	}
}

// Page is a browser tab.
type Page struct {
	b               *Browser
	target, session string
}

// Open opens a tab of width×height CSS pixels on url. It returns once the
// navigation is under way, not loaded: poll the page (Eval) for what the
// test waits for.
func (b *Browser) Open(url string, width, height int) (*Page, error) {
	var tr struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &tr); err != nil {
		return nil, err
	}
	var sr struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": tr.TargetID, "flatten": true}, &sr); err != nil {
		return nil, err
	}
	p := &Page{b: b, target: tr.TargetID, session: sr.SessionID}
	for _, c := range []struct {
		method string
		params any
	}{
		{"Runtime.enable", nil},
		{"Page.enable", nil},
		{"Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}},
		{"Page.navigate", map[string]any{"url": url}},
	} {
		if err := b.call(p.session, c.method, c.params, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Eval evaluates the JavaScript expression expr in the page (awaiting it
// when it is a promise) and decodes its value, as JSON, into out (nil:
// ignored). An exception thrown is an error.
func (p *Page) Eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if err != nil {
		return err
	}
	if e := r.Exception; e != nil {
		return fmt.Errorf("%s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil || r.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Reload reloads the page.
func (p *Page) Reload() error { return p.b.call(p.session, "Page.reload", nil, nil) }

// Screenshot returns the page as the browser renders it now, PNG.
func (p *Page) Screenshot() ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := p.b.call(p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

// Close closes the tab, as a person closing a window does: the page's
// connections go.
func (p *Page) Close() error {
	return p.b.call("", "Target.closeTarget", map[string]any{"targetId": p.target}, nil)
}

// SideBySide puts PNG images next to each other, top-aligned, with a
// margin of gap pixels around and between them, on a light grey
// background, and returns the PNG of the whole.
func SideBySide(gap int, pngs ...[]byte) ([]byte, error) {
	if len(pngs) == 0 {
		return nil, errors.New("browsertest: no image")
	}
	imgs := make([]image.Image, len(pngs))
	w, h := gap, 0
	for i, b := range pngs {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("browsertest: image %d: %w", i, err)
		}
		imgs[i] = img
		w += img.Bounds().Dx() + gap
		h = max(h, img.Bounds().Dy())
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h+2*gap))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{0xd0, 0xd7, 0xde, 0xff}), image.Point{}, draw.Src)
	x := gap
	for _, img := range imgs {
		r := img.Bounds()
		draw.Draw(out, image.Rect(x, gap, x+r.Dx(), gap+r.Dy()), img, r.Min, draw.Src)
		x += r.Dx() + gap
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
