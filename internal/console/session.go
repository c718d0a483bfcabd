package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/auth"
)

// PasswordFile is where `slipway console passwd` keeps the admin password's bcrypt hash.
func PasswordFile(dataDir string) string { return filepath.Join(dataDir, "console.passwd") }

// MinPassword is the shortest admin password accepted.
const MinPassword = 12

// SetPassword stores the bcrypt hash of password (never the password) for the admin login.
func SetPassword(dataDir, password string) error {
	if len(password) < MinPassword {
		return fmt.Errorf("the password must have at least %d characters", MinPassword)
	}
	if len(password) > 72 {
		return errors.New("the password must have at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(PasswordFile(dataDir), append(h, '\n'), 0o600)
}

// bcryptCost is the work factor of stored hashes (tests lower it).
var bcryptCost = 12

var (
	dummyOnce sync.Once
	dummyHash []byte
)

func checkPassword(dataDir, password string) bool {
	h, err := os.ReadFile(PasswordFile(dataDir))
	if err != nil || len(password) == 0 {
		// Spend the same time as a real check, so timing does not say whether a password is set.
		dummyOnce.Do(func() { dummyHash, _ = bcrypt.GenerateFromPassword([]byte(randomToken()[:20]), bcryptCost) })
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(string(h))), []byte(password)) == nil
}

const (
	cookieName      = "slipway_console"
	loginCookieName = "slipway_login"
	sessionTTL      = 12 * time.Hour
)

type session struct {
	id      string
	csrf    string
	who     *auth.Identity
	expires time.Time
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func (ss *sessions) create(who *auth.Identity) *session {
	s := &session{id: randomToken(), csrf: randomToken(), who: who, expires: time.Now().Add(sessionTTL)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := time.Now()
	for k, v := range ss.m {
		if now.After(v.expires) {
			delete(ss.m, k)
		}
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil || time.Now().After(s.expires) {
		return nil
	}
	return s
}

func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	delete(ss.m, id)
	ss.mu.Unlock()
}

// cookie sets the console's cookies: Secure, HttpOnly, SameSite=Strict.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// limiter refuses logins from an address after too many failures in a window.
type limiter struct {
	mu     sync.Mutex
	fails  map[string][]time.Time
	max    int
	window time.Duration
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// blocked reports how long ip must wait (0: it may try).
func (l *limiter) blocked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var keep []time.Time
	for _, t := range l.fails[ip] {
		if now.Sub(t) < l.window {
			keep = append(keep, t)
		}
	}
	l.fails[ip] = keep
	if len(keep) < l.max {
		return 0
	}
	return l.window - now.Sub(keep[0])
}

func (l *limiter) fail(ip string) {
	l.mu.Lock()
	l.fails[ip] = append(l.fails[ip], time.Now())
	l.mu.Unlock()
}

func (l *limiter) reset(ip string) {
	l.mu.Lock()
	delete(l.fails, ip)
	l.mu.Unlock()
}

// plainHTTPWarning is what the login page says when the browser will drop the
// console's Secure cookies: on plain HTTP, Chromium and Firefox keep them for
// loopback hosts only (localhost, *.localhost, 127.0.0.1, ::1). Behind a proxy
// that terminates TLS (X-Forwarded-Proto: https) the browser sees HTTPS.
func plainHTTPWarning(r *http.Request) string {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") || loopbackHost(r.Host) {
		return ""
	}
	return "this console is served over plain HTTP to " + r.Host + ": browsers drop its Secure session cookies except on localhost, so logging in will not stick. Serve the API with TLS (--api-cert/--api-key), put it behind HTTPS, or reach it through an SSH tunnel to localhost"
}

func loopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}
