// Package console is Slipway's web console, served by serve on the API
// listener at /: a fleet view, store pages, job pages with live logs over
// server-sent events, and buttons that queue jobs. Everything it needs is
// embedded (templates, CSS, a small script); read-only pages work without
// JavaScript. Logins use the admin password (`slipway console passwd`,
// bcrypt) or an API token, whose scope the buttons honour.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/state"
)

//go:embed assets
var assets embed.FS

// Options are what the console reads and acts on.
type Options struct {
	DataDir  string
	State    *state.DB
	Router   *proxy.Router
	Driver   driver.Driver
	Deployer *pipeline.Deployer
	// Tokens, when set, lets API tokens log in with their scope.
	Tokens *auth.Tokens
	// Push queues jobs; nil: the console is read-only.
	Push *push.Service
	// Logs streams a store's app log to its page; nil: the page has none.
	Logs AppLogs
	// RouterAddr is the router's listen address, for store URLs.
	RouterAddr func() string
	Log        *slog.Logger
}

// Console serves the web UI.
type Console struct {
	o        Options
	tpl      *template.Template
	sessions sessions
	limit    limiter
	commits  commitCache

	cfgMu   sync.Mutex
	cfg     *config.Config
	cfgAt   string
	cfgTree fs.FS
}

// New parses the embedded templates.
func New(o Options) (*Console, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.RouterAddr == nil {
		o.RouterAddr = func() string { return "127.0.0.1:8080" }
	}
	tpl, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	return &Console{o: o, tpl: tpl, sessions: sessions{m: map[string]*session{}},
		limit: limiter{fails: map[string][]time.Time{}, max: 5, window: 10 * time.Minute}, commits: commitCache{m: map[string]string{}}}, nil
}

var funcs = template.FuncMap{
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return t.Local().Format("2006-01-02")
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"took": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return "-"
		}
		return b.Sub(a).Round(10 * time.Millisecond).String()
	},
	"join": strings.Join,
	"dec":  func(n int) int { return n - 1 },
}

// Router is where the console's routes go (server.Server implements it).
type Router interface {
	HandlePublic(pattern string, h http.Handler)
}

// Mount adds the console's routes; they check the console's own session cookie.
func (c *Console) Mount(r Router) {
	r.HandlePublic("GET /{$}", c.page(c.fleetPage))
	r.HandlePublic("GET /login", http.HandlerFunc(c.loginForm))
	r.HandlePublic("POST /login", http.HandlerFunc(c.login))
	r.HandlePublic("POST /logout", http.HandlerFunc(c.logout))
	r.HandlePublic("GET /stores/{store}", c.page(c.storeHandler))
	r.HandlePublic("POST /stores/{store}/action", c.page(c.action))
	r.HandlePublic("GET /stores/{store}/logs/events", c.page(c.logEvents))
	r.HandlePublic("GET /jobs", c.page(c.jobsPage))
	r.HandlePublic("GET /jobs/{id}", c.page(c.jobPage))
	r.HandlePublic("GET /jobs/{id}/events", c.page(c.jobEvents))
	r.HandlePublic("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(c.static)))
}

type handler func(w http.ResponseWriter, r *http.Request, s *session)

// page requires a session (else the login page), checks CSRF on POST, and sets safe headers.
func (c *Console) page(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		s := c.sessions.get(r)
		if s == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "log in first", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if err := r.ParseForm(); err != nil || !sameToken(r.PostForm.Get("csrf"), s.csrf) {
				http.Error(w, "the form's CSRF token is missing or wrong: reload the page", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	})
}

func headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, ".html") || strings.Contains(r.URL.Path, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, assets, "assets/"+r.URL.Path)
}

// view is what every template gets.
type view struct {
	Title   string
	Who     *auth.Identity
	CSRF    string
	Msg     string
	Err     string
	Data    any
	Elapsed time.Duration
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, name, title string, data any, start time.Time) {
	c.renderStatus(w, r, s, http.StatusOK, name, title, data, start)
}

func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, s *session, code int, name, title string, data any, start time.Time) {
	v := view{Title: title, Data: data, Msg: r.URL.Query().Get("msg"), Err: r.URL.Query().Get("err")}
	if s != nil {
		v.Who, v.CSRF = s.who, s.csrf
	}
	v.Elapsed = time.Since(start).Round(10 * time.Microsecond)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Server-Timing", fmt.Sprintf("app;dur=%.1f", float64(time.Since(start).Microseconds())/1000))
	w.WriteHeader(code)
	if err := c.tpl.ExecuteTemplate(w, name, v); err != nil {
		c.o.Log.Error("console template", "page", name, "error", err)
	}
}

// can reports whether the session may act on store with need.
func can(s *session, need auth.Scope, store string) bool {
	return auth.CheckStore(auth.WithIdentity(context.Background(), s.who), need, store) == nil
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	headers(w)
	tok := randomToken()
	setCookie(w, loginCookieName, tok, 600)
	c.render(w, r, nil, "login.html", "Log in", map[string]string{"LoginCSRF": tok, "Next": safeNext(r.URL.Query().Get("next")), "Error": plainHTTPWarning(r)}, time.Now())
}

// safeNext keeps redirects after login on this site.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.Contains(n, "\\") {
		return "/"
	}
	return n
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	headers(w)
	ip := clientIP(r)
	if wait := c.limit.blocked(ip); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		http.Error(w, "too many failed logins from your address: try again later", http.StatusTooManyRequests)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ck, err := r.Cookie(loginCookieName)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), ck.Value) {
		msg := "the login form expired: reload it"
		if warn := plainHTTPWarning(r); warn != "" {
			msg = warn
		}
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	secret := r.PostForm.Get("password")
	who, err := c.identify(r.Context(), secret)
	if err != nil {
		c.limit.fail(ip)
		c.o.Log.Warn("console login failed", "remote", ip)
		tok := randomToken()
		setCookie(w, loginCookieName, tok, 600)
		c.renderStatus(w, r, nil, http.StatusUnauthorized, "login.html", "Log in", map[string]string{"LoginCSRF": tok, "Next": safeNext(r.PostForm.Get("next")), "Error": "wrong password or token"}, time.Now())
		return
	}
	c.limit.reset(ip)
	s := c.sessions.create(who)
	setCookie(w, cookieName, s.id, int(sessionTTL.Seconds()))
	setCookie(w, loginCookieName, "", -1)
	c.o.Log.Info("console login", "who", who.Name, "remote", ip)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// identify accepts the admin password, or an API token (with its scope and stores).
func (c *Console) identify(ctx context.Context, secret string) (*auth.Identity, error) {
	if strings.HasPrefix(secret, auth.TokenPrefix) && c.o.Tokens != nil {
		id, err := c.o.Tokens.Verify(ctx, secret)
		if err != nil {
			return nil, err
		}
		id.Via = "console token"
		return id, nil
	}
	if checkPassword(c.o.DataDir, secret) {
		return &auth.Identity{Name: "admin", Scope: auth.ScopeAdmin, Via: "console"}, nil
	}
	return nil, errors.New("wrong password")
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	headers(w)
	s := c.sessions.get(r)
	if s != nil {
		r.ParseForm()
		if !sameToken(r.PostForm.Get("csrf"), s.csrf) {
			http.Error(w, "bad CSRF token", http.StatusForbidden)
			return
		}
		c.sessions.drop(s.id)
	}
	setCookie(w, cookieName, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// FleetView is the fleet page's data.
type FleetView struct {
	Rows      []Row
	CanDeploy map[string]bool
	Repo      string
	// Rollout is the newest fleet rollout, while it runs or for an hour after.
	Rollout *api.Rollout
}

func (c *Console) fleetPage(w http.ResponseWriter, r *http.Request, s *session) {
	start := time.Now()
	rows, err := c.fleet(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fv := FleetView{Rows: rows, CanDeploy: map[string]bool{}}
	for _, row := range rows {
		fv.CanDeploy[row.Store] = c.o.Push != nil && can(s, auth.ScopeDeploy, row.Store)
	}
	if c.o.Push != nil && c.o.Push.Repo != nil {
		fv.Repo = c.o.Push.Repo.Branch()
	}
	fv.Rollout = c.rollout(s)
	c.render(w, r, s, "fleet.html", "Fleet", fv, start)
}

// StoreView is the store page's data.
type StoreView struct {
	*StorePage
	CanDeploy bool
	// Logs: the page streams the store's app log.
	Logs bool
}

func (c *Console) storeHandler(w http.ResponseWriter, r *http.Request, s *session) {
	start := time.Now()
	id := r.PathValue("store")
	if !can(s, auth.ScopeRead, id) {
		http.Error(w, "your token may not read this store", http.StatusForbidden)
		return
	}
	p, err := c.storePage(r.Context(), id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if p == nil {
		http.NotFound(w, r)
		return
	}
	c.render(w, r, s, "store.html", "Store "+id, StoreView{StorePage: p, CanDeploy: c.o.Push != nil && can(s, auth.ScopeDeploy, id), Logs: c.o.Logs != nil}, start)
}

func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, s *session) {
	start := time.Now()
	if c.o.Push == nil {
		http.NotFound(w, r)
		return
	}
	list, err := c.o.Push.Queue.List(r.Context(), jobs.Filter{Limit: 100})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var out []*jobs.Job
	for _, j := range list {
		if can(s, auth.ScopeRead, j.Store) {
			out = append(out, j)
		}
	}
	c.render(w, r, s, "jobs.html", "Jobs", out, start)
}

// JobView is the job page's data.
type JobView struct {
	Job       *jobs.Job
	Lines     []jobs.Line
	CanCancel bool
}

func (c *Console) job(w http.ResponseWriter, r *http.Request, s *session) *jobs.Job {
	if c.o.Push == nil {
		http.NotFound(w, r)
		return nil
	}
	j, err := c.o.Push.Queue.Get(r.Context(), r.PathValue("id"))
	if err != nil || !can(s, auth.ScopeRead, j.Store) {
		http.NotFound(w, r)
		return nil
	}
	return j
}

func (c *Console) jobPage(w http.ResponseWriter, r *http.Request, s *session) {
	start := time.Now()
	j := c.job(w, r, s)
	if j == nil {
		return
	}
	lines, _ := c.o.Push.Queue.Logs(r.Context(), j.ID, 0, 5000)
	c.render(w, r, s, "job.html", "Job "+j.ID, JobView{Job: j, Lines: lines, CanCancel: !j.Done() && can(s, auth.ScopeDeploy, j.Store)}, start)
}

// jobEvents streams a job's log as server-sent events; EventSource resumes with Last-Event-ID.
func (c *Console) jobEvents(w http.ResponseWriter, r *http.Request, s *session) {
	j := c.job(w, r, s)
	if j == nil {
		return
	}
	var after int64
	fmt.Sscan(r.Header.Get("Last-Event-ID"), &after)
	if after == 0 {
		fmt.Sscan(r.URL.Query().Get("after"), &after)
	}
	push.StreamLog(w, r, c.o.Push.Queue, j.ID, after)
}

// rollout returns the newest reported fleet rollout, showing the stores the
// session may read, while it runs or for an hour after it ended.
func (c *Console) rollout(s *session) *api.Rollout {
	if c.o.Push == nil {
		return nil
	}
	list := c.o.Push.Rollouts()
	if len(list) == 0 {
		return nil
	}
	r := list[0]
	if r.Status != api.RolloutRunning && time.Since(r.UpdatedAt) > time.Hour {
		return nil
	}
	var waves []api.RolloutWave
	for _, w := range r.Waves {
		var keep []api.RolloutStore
		for _, st := range w.Stores {
			if can(s, auth.ScopeRead, st.Store) {
				keep = append(keep, st)
			}
		}
		if len(keep) > 0 {
			w.Stores = keep
			waves = append(waves, w)
		}
	}
	if len(waves) == 0 {
		return nil
	}
	r.Waves = waves
	return &r
}
