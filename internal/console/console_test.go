package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver/process"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

func init() { bcryptCost = 4 }

type mux struct{ *http.ServeMux }

func (m mux) HandlePublic(p string, h http.Handler) { m.ServeMux.Handle(p, h) }

func newConsole(t *testing.T) (*Console, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rt, err := proxy.NewRouter(filepath.Join(dir, "router.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	drv, err := process.New(filepath.Join(dir, "runtime"))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(dir, "a-long-enough-password"); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{DataDir: dir, State: st, Router: rt, Driver: drv})
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	c.Mount(m)
	return c, m
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login posts the login form as a browser would and returns the response.
func login(t *testing.T, h http.Handler, password string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
	m := csrfRe.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no csrf field in the login form: %s", rec.Body.String())
	}
	var loginCookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == loginCookieName {
			loginCookie = c
		}
	}
	form := url.Values{"csrf": {m[1]}, "password": {password}, "next": {"/"}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(loginCookie)
	req.RemoteAddr = "192.0.2.7:5555"
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestLoginCookiesCSRFAndRateLimit(t *testing.T) {
	_, h := newConsole(t)
	// Pages need a session.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login") {
		t.Fatalf("anonymous fleet: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	rec = login(t, h, "a-long-enough-password")
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", rec.Code, rec.Body.String())
	}
	var sess *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == cookieName {
			sess = c
		}
	}
	if sess == nil || !sess.Secure || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v", sess)
	}
	// The fleet renders without JavaScript, with a CSP that allows no inline script.
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(sess)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<table class=\"fleet\"") || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("fleet: %d %v", rec.Code, rec.Header())
	}
	// A form without the session's CSRF token is refused.
	for _, csrf := range []string{"", "forged"} {
		req = httptest.NewRequest("POST", "/stores/us/action", strings.NewReader(url.Values{"action": {"stop"}, "csrf": {csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(sess)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("action with csrf %q: %d", csrf, rec.Code)
		}
	}
	// Five wrong passwords, then even the right one waits.
	for i := 0; i < 5; i++ {
		if rec := login(t, h, "wrong-password"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, rec.Code)
		}
	}
	if rec := login(t, h, "a-long-enough-password"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("after 5 failures: %d", rec.Code)
	}
}

func TestPasswordRules(t *testing.T) {
	dir := t.TempDir()
	if err := SetPassword(dir, "short"); err == nil {
		t.Fatal("a short password was accepted")
	}
	if checkPassword(dir, "anything") {
		t.Fatal("a login worked with no password set")
	}
	if err := SetPassword(dir, "a-long-enough-password"); err != nil {
		t.Fatal(err)
	}
	if !checkPassword(dir, "a-long-enough-password") || checkPassword(dir, "a-long-enough-passwore") {
		t.Fatal("password check")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/stores/us": "/stores/us", "//evil.test/": "/", "https://evil.test": "/", "/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
