package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

type sseEvent struct{ id, event, data string }

func parseSSE(body string) []sseEvent {
	var out []sseEvent
	for _, block := range strings.Split(body, "\n\n") {
		var e sseEvent
		for _, l := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(l, ": ")
			switch k {
			case "id":
				e.id = v
			case "event":
				e.event = v
			case "data":
				e.data = v
			}
		}
		if e.event != "" {
			out = append(out, e)
		}
	}
	return out
}

// The store page's app log over SSE: lines named by their source, ids that
// a reconnect resumes from (Last-Event-ID) without a line lost or repeated,
// even among lines of the same instant from two instances.
func TestAppLogEventsResume(t *testing.T) {
	c, h := newConsole(t)
	at := time.Unix(1700000000, 0)
	lines := []LogLine{
		{Time: at, Source: "us-web-1", App: "web", Text: "a"},
		{Time: at.Add(time.Millisecond), Source: "us-web-2", App: "web", Text: "b"},
		{Time: at.Add(time.Millisecond), Source: "us-web-1", App: "web", Text: "c"},
		{Time: at.Add(2 * time.Millisecond), Source: "deploy", Text: "d"},
	}
	var gotTail int
	c.o.Logs = func(ctx context.Context, store string, since time.Time, tail int, send func(LogLine) bool) error {
		gotTail = tail
		if store != "us" {
			t.Errorf("logs of %q", store)
		}
		for _, l := range lines {
			if l.Time.After(since) && !send(l) {
				return nil
			}
		}
		return nil
	}
	var sess *http.Cookie
	for _, ck := range login(t, h, "a-long-enough-password").Result().Cookies() {
		if ck.Name == cookieName {
			sess = ck
		}
	}
	get := func(lastID string) []sseEvent {
		t.Helper()
		req := httptest.NewRequest("GET", "/stores/us/logs/events", nil)
		req.AddCookie(sess)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events: %d %v %s", rec.Code, rec.Header(), rec.Body.String())
		}
		return parseSSE(rec.Body.String())
	}
	texts := func(es []sseEvent) string {
		var b []string
		for _, e := range es {
			b = append(b, e.data)
		}
		return strings.Join(b, "|")
	}
	all := get("")
	if len(all) != 4 || gotTail != appLogTail || !strings.Contains(all[0].data, `"source":"us-web-1"`) || !strings.Contains(all[3].data, `"text":"d"`) {
		t.Fatalf("first connection (tail %d): %s", gotTail, texts(all))
	}
	// Resuming after each line sends exactly the lines after it.
	for i, e := range all {
		rest := get(e.id)
		if gotTail != 0 || texts(rest) != texts(all[i+1:]) {
			t.Fatalf("resumed after line %d (id %s, tail %d): got %s, want %s", i, e.id, gotTail, texts(rest), texts(all[i+1:]))
		}
	}
	// A garbled Last-Event-ID starts over from the tail.
	if again := get("nonsense"); len(again) != 4 {
		t.Fatalf("after a garbled id: %s", texts(again))
	}
}

// Secure cookies on plain HTTP stick on loopback hosts only: the login page
// says so to a browser that reached the console by another name.
func TestLoginWarnsOnPlainHTTPOffLoopback(t *testing.T) {
	_, h := newConsole(t)
	for host, warn := range map[string]bool{"localhost:7443": false, "127.0.0.1:7443": false, "[::1]:7443": false, "console.localhost": false,
		"10.0.0.5:7443": true, "console.example.com": true} {
		req := httptest.NewRequest("GET", "/login", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := strings.Contains(rec.Body.String(), "browsers drop its Secure session cookies"); got != warn {
			t.Errorf("login page at %s: warning %v, want %v", host, got, warn)
		}
	}
	req := httptest.NewRequest("GET", "/login", nil)
	req.Host, req.Header["X-Forwarded-Proto"] = "console.example.com", []string{"https"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), "Secure session cookies") {
		t.Error("warned behind a proxy that terminates TLS")
	}
}

// A line of one instance stamped before another instance's newer line, but
// arriving after the connection dropped, is sent on the resume, once; and
// nothing sent before is sent again, from whichever line the drop came after.
func TestAppLogResumeSendsLateEarlierLine(t *testing.T) {
	c, h := newConsole(t)
	at := time.Unix(1700000000, 0)
	line := func(ms int, src, text string) LogLine {
		return LogLine{Time: at.Add(time.Duration(ms) * time.Millisecond), Source: src, App: "web", Text: text}
	}
	served := []LogLine{line(0, "us-web-1", "a"), line(1, "us-web-2", "b"), line(5, "us-web-1", "c")}
	tail := -1
	c.o.Logs = func(ctx context.Context, store string, since time.Time, n int, send func(LogLine) bool) error {
		tail = n
		for _, l := range served {
			if l.Time.After(since) && !send(l) {
				return nil
			}
		}
		return nil
	}
	sess := sessionCookie(t, h)
	get := func(lastID string) []sseEvent {
		t.Helper()
		req := httptest.NewRequest("GET", "/stores/us/logs/events", nil)
		req.AddCookie(sess)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return parseSSE(rec.Body.String())
	}
	texts := func(es []sseEvent) string {
		var b []string
		for _, e := range es {
			i := strings.Index(e.data, `"text":"`)
			b = append(b, e.data[i+8:i+9])
		}
		return strings.Join(b, "")
	}
	first := get("")
	if texts(first) != "abc" {
		t.Fatalf("first connection: %s", texts(first))
	}
	// While the page was away: us-web-2 prints a line stamped before c (its
	// output was buffered), then us-web-1 a new one. The log is read in time order.
	served = []LogLine{served[0], served[1], line(3, "us-web-2", "L"), served[2], line(6, "us-web-1", "e")}
	for i, e := range first {
		sent := texts(first[:i+1])
		var want strings.Builder
		for _, l := range served {
			if !strings.Contains(sent, l.Text) {
				want.WriteString(l.Text)
			}
		}
		got := get(e.id)
		if tail != 0 || texts(got) != want.String() {
			t.Fatalf("resumed after %q (id %s, tail %d): got %q, want %q", sent, e.id, tail, texts(got), want.String())
		}
		// The resumed stream's ids resume too.
		if rest := get(got[0].id); texts(rest) != want.String()[1:] {
			t.Fatalf("resumed again after %q: got %q, want %q", want.String()[:1], texts(rest), want.String()[1:])
		}
	}
	// An id of the console before per-source positions resumes by time (no tail, nothing repeated).
	if got := get(strconv.FormatInt(at.Add(5*time.Millisecond).UnixNano(), 10) + "-1"); tail != 0 || texts(got) != "e" {
		t.Fatalf("resumed from an old-style id: %q (tail %d)", texts(got), tail)
	}
	if got := get("c1x.zz"); tail != appLogTail || len(got) != len(served) {
		t.Fatalf("a garbled id: %q (tail %d), want the tail", texts(got), tail)
	}
}

func sessionCookie(t *testing.T, h http.Handler) *http.Cookie {
	for _, ck := range login(t, h, "a-long-enough-password").Result().Cookies() {
		if ck.Name == cookieName {
			return ck
		}
	}
	t.Fatal("no session cookie after login")
	return nil
}
