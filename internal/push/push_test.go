package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/testenv"
)

type harness struct {
	t      *testing.T
	srv    *server.Server
	svc    *push.Service
	repo   *testenv.GitRepo
	api    string
	secret []byte
	local  *http.Client
	n      int
	opts   push.Options
	deps   push.Deps
	ctx    context.Context
}

const githubSecret = "gh-secret-for-tests"

// start runs serve with the push service; its webhooks wait up to budget for their decisions.
func start(t *testing.T, budget time.Duration) *harness {
	t.Helper()
	testenv.Node(t)
	g := testenv.NewGitRepo(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	secrets := t.TempDir()
	os.WriteFile(filepath.Join(secrets, "github"), []byte(githubSecret+"\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "gitea"), []byte("gitea-secret"), 0o600)
	os.WriteFile(filepath.Join(secrets, "gitlab"), []byte("gitlab-token"), 0o600)
	opts := push.Options{DataDir: dir, Jobs: 2, DecideBudget: budget,
		Source:      source.Options{URL: g.Bare, Branch: "main"},
		SecretFiles: map[string]string{source.GitHub: filepath.Join(secrets, "github"), source.Gitea: filepath.Join(secrets, "gitea"), source.GitLab: filepath.Join(secrets, "gitlab")}}
	deps := push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images}
	svc, err := push.Open(ctx, opts, deps)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	svc.Mount(srv)
	svc.Start(ctx)
	done := make(chan struct{})
	serveCtx, stopServe := context.WithCancel(context.Background())
	go func() { srv.Serve(serveCtx); close(done) }()
	h := &harness{t: t, srv: srv, repo: g, api: srv.APIURL(), secret: []byte(githubSecret), opts: opts, deps: deps, ctx: ctx}
	h.svc = svc
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		h.svc.Stop(sctx)
		cancel()
		stopServe()
		<-done
	})
	sock := server.SocketPath(dir)
	local := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	h.local = local
	return h
}

// github sends a push delivery signed as GitHub does; sig overrides the signature when set.
func (h *harness) github(event, delivery, sig string, payload any) (int, push.Answer) {
	h.t.Helper()
	body, _ := json.Marshal(payload)
	req, _ := http.NewRequest("POST", h.api+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig == "" {
		sig = "sha256=" + source.Sign(h.secret, body)
	}
	req.Header.Set("X-Hub-Signature-256", sig)
	return h.send(req)
}

func (h *harness) send(req *http.Request) (int, push.Answer) {
	h.t.Helper()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a push.Answer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		h.t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
	}
	if took := time.Since(start); took > 5*time.Second {
		h.t.Errorf("the webhook took %s to answer", took)
	}
	return resp.StatusCode, a
}

func pushPayload(branch, after, msg string) map[string]any {
	return map[string]any{"ref": "refs/heads/" + branch, "before": strings.Repeat("0", 40), "after": after,
		"head_commit": map[string]any{"id": after, "message": msg}, "pusher": map[string]any{"name": "octo"},
		// Never used: serve fetches from its configured repository only.
		"repository": map[string]any{"clone_url": "https://evil.example.test/other.git"}}
}

func (h *harness) delivery() string {
	h.n++
	return fmt.Sprintf("delivery-%d", h.n)
}

func decisions(a push.Answer) map[string]push.StoreDecision {
	m := map[string]push.StoreDecision{}
	for _, d := range a.Stores {
		m[d.Store] = d
	}
	return m
}

func (h *harness) waitJobs(a push.Answer) {
	h.t.Helper()
	for _, d := range a.Stores {
		if d.Job == "" {
			continue
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			j, err := h.svc.Queue.Get(context.Background(), d.Job)
			if err != nil {
				h.t.Fatal(err)
			}
			if j.Done() {
				if j.Status != jobs.StatusSucceeded {
					lines, _ := h.svc.Queue.Logs(context.Background(), j.ID, 0, 0)
					var b strings.Builder
					for _, l := range lines {
						b.WriteString(l.Text + "\n")
					}
					h.t.Fatalf("job %s (%s) ended %s: %s\n%s", j.ID, j.Store, j.Status, j.Error, b.String())
				}
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("job %s still %s", j.ID, j.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (h *harness) liveCommits() map[string]string {
	out := map[string]string{}
	for _, st := range []string{"us", "eu", "sports-brand"} {
		if r, err := h.srv.State.Current(context.Background(), st); err == nil && r != nil {
			out[st] = r.Commit
		}
	}
	return out
}

func (h *harness) jobCount() int {
	list, err := h.svc.Queue.List(context.Background(), jobs.Filter{Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(list)
}

func (h *harness) get(url string) string {
	h.t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestWebhooksDeployExactlyTheChangedStores(t *testing.T) {
	h := start(t, time.Minute)
	g := h.repo
	first := testenv.Git(t, g.Clone, "rev-parse", "HEAD")

	code, a := h.github("ping", h.delivery(), "", map[string]any{"zen": "hi"})
	if code != http.StatusOK || a.Status != "pong" {
		t.Fatalf("ping: %d %+v", code, a)
	}

	// Nothing is live: the first push deploys every store.
	code, a = h.github("push", h.delivery(), "", pushPayload("main", first, "initial"))
	if code != http.StatusAccepted || len(a.Stores) != 3 {
		t.Fatalf("first push: %d %+v", code, a)
	}
	for _, d := range a.Stores {
		if d.Decision != push.Queued || d.Job == "" {
			t.Fatalf("first push, %s: %+v", d.Store, d)
		}
	}
	h.waitJobs(a)
	if live := h.liveCommits(); live["us"] != first || live["eu"] != first || live["sports-brand"] != first {
		t.Fatalf("live after the first push: %v", live)
	}

	// A change to us's own file deploys us only.
	c2 := g.Commit("main", "us: new locale", map[string]string{
		"apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json": "{\"code\":\"en-US\",\"currency\":\"USD\",\"v\":2,\"from\":\"us v2\"}\n"})
	d2 := h.delivery()
	code, a = h.github("push", d2, "", pushPayload("main", c2, "us: new locale"))
	ds := decisions(a)
	if code != http.StatusAccepted || ds["us"].Decision != push.Queued || strings.Join(ds["us"].Reasons, ",") != "STORE_CHANGED" ||
		ds["eu"].Decision != push.Unchanged || ds["sports-brand"].Decision != push.Unchanged {
		t.Fatalf("us change: %d %+v", code, a)
	}
	h.waitJobs(a)
	if live := h.liveCommits(); live["us"] != c2 || live["eu"] != first || live["sports-brand"] != first {
		t.Fatalf("live after us's change: %v", live)
	}
	if body := h.get("http://" + h.srv.HTTPAddr() + "/"); body == "" {
		t.Fatal("the router answers nothing")
	}

	// Replaying that delivery does nothing.
	before := h.jobCount()
	code, a = h.github("push", d2, "", pushPayload("main", c2, "us: new locale"))
	if code != http.StatusOK || a.Status != "duplicate" || h.jobCount() != before {
		t.Fatalf("replay: %d %+v (%d jobs, had %d)", code, a, h.jobCount(), before)
	}

	// A base-app change that fashion-brand overrides deploys neither us nor eu.
	c3 := g.Commit("main", "base header", map[string]string{"apps/storefront-unified-nextjs/components/header.js": "module.exports = { text: 'Acme v2', from: 'base v2' };\n"})
	code, a = h.github("push", h.delivery(), "", pushPayload("main", c3, "base header"))
	for _, d := range a.Stores {
		if d.Decision != push.Unchanged {
			t.Fatalf("an overridden base change: %d %+v", code, a)
		}
	}
	if h.jobCount() != before {
		t.Fatal("an overridden base change queued a job")
	}

	// A bad signature: 401, nothing queued.
	c4 := g.Commit("main", "eu footer", map[string]string{"apps/stores/fashion-brand/stores/eu/storefront-unified-nextjs/components/footer.js": "module.exports = { text: 'EU footer v2', from: 'eu v2' };\n"})
	code, a = h.github("push", h.delivery(), "sha256="+strings.Repeat("ab", 32), pushPayload("main", c4, "eu footer"))
	if code != http.StatusUnauthorized || h.jobCount() != before {
		t.Fatalf("bad signature: %d %+v", code, a)
	}
	// Signed with another secret: the same.
	body, _ := json.Marshal(pushPayload("main", c4, "eu footer"))
	code, _ = h.github("push", h.delivery(), "sha256="+source.Sign([]byte("wrong"), body), pushPayload("main", c4, "eu footer"))
	if code != http.StatusUnauthorized || h.jobCount() != before {
		t.Fatalf("wrong secret: %d", code)
	}

	// A push to another branch, a tag, and a [skip ci] push do nothing.
	other := g.Commit("feature", "elsewhere", map[string]string{"apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json": "{\"v\":3}\n"})
	code, a = h.github("push", h.delivery(), "", pushPayload("feature", other, "elsewhere"))
	if code != http.StatusAccepted || a.Status != "ignored" || h.jobCount() != before {
		t.Fatalf("other branch: %d %+v", code, a)
	}
	tag := pushPayload("main", c4, "eu footer")
	tag["ref"] = "refs/tags/v1"
	if code, a = h.github("push", h.delivery(), "", tag); a.Status != "ignored" || h.jobCount() != before {
		t.Fatalf("tag: %d %+v", code, a)
	}
	if code, a = h.github("push", h.delivery(), "", pushPayload("main", c4, "eu footer [skip ci]")); a.Status != "skipped" || h.jobCount() != before {
		t.Fatalf("skip: %d %+v", code, a)
	}
	for _, d := range a.Stores {
		if d.Decision != push.Skipped {
			t.Fatalf("skip: %+v", d)
		}
	}

	// Gitea (signed the same way, its own header and secret) deploys eu's change.
	body, _ = json.Marshal(pushPayload("main", c4, "eu footer"))
	req, _ := http.NewRequest("POST", h.api+"/hooks/gitea", bytes.NewReader(body))
	req.Header.Set("X-Gitea-Event", "push")
	req.Header.Set("X-Gitea-Delivery", "gitea-1")
	req.Header.Set("X-Gitea-Signature", source.Sign([]byte(githubSecret), body))
	if code, _ := h.send(req); code != http.StatusUnauthorized {
		t.Fatalf("gitea signed with github's secret: %d", code)
	}
	req, _ = http.NewRequest("POST", h.api+"/hooks/gitea", bytes.NewReader(body))
	req.Header.Set("X-Gitea-Event", "push")
	req.Header.Set("X-Gitea-Delivery", "gitea-2")
	req.Header.Set("X-Gitea-Signature", source.Sign([]byte("gitea-secret"), body))
	code, a = h.send(req)
	ds = decisions(a)
	if code != http.StatusAccepted || ds["eu"].Decision != push.Queued || ds["us"].Decision != push.Unchanged {
		t.Fatalf("gitea push: %d %+v", code, a)
	}
	h.waitJobs(a)
	if live := h.liveCommits(); live["eu"] != c4 || live["us"] != c2 {
		t.Fatalf("live after eu's change: %v", live)
	}

	// GitLab: the token, compared as is.
	req, _ = http.NewRequest("POST", h.api+"/hooks/gitlab", strings.NewReader(`{"object_kind":"push","ref":"refs/heads/main","after":"`+c4+`","commits":[{"id":"`+c4+`","message":"eu footer"}]}`))
	req.Header.Set("X-Gitlab-Event", "Push Hook")
	req.Header.Set("X-Gitlab-Event-UUID", "gl-1")
	req.Header.Set("X-Gitlab-Token", "gitlab-token")
	code, a = h.send(req)
	for _, d := range a.Stores {
		if d.Decision != push.Unchanged && d.Note == "" {
			t.Fatalf("gitlab push of a live commit: %d %+v", code, a)
		}
	}

	// The jobs API lists them over the socket (the admin's door).
	resp, err := h.local.Get("http://slipway/v1/jobs?store=us")
	if err != nil {
		t.Fatal(err)
	}
	var list []jobs.Job
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 2 || list[0].Commit != c2 || list[0].Trigger != jobs.TriggerWebhook || list[0].Who != "github:octo" {
		t.Fatalf("jobs of us: %+v", list)
	}
	// Without a token the remote API refuses the jobs list.
	if resp, err := http.Get(h.api + "/v1/jobs"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v1/jobs: %v %v", resp.StatusCode, err)
	}
}

func TestWebhookRefusedWithoutSecret(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	q, err := push.Open(ctx, push.Options{DataDir: dir}, push.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop(ctx)
	mux := &muxRouter{http.NewServeMux()}
	q.Mount(mux)
	for _, p := range source.Providers {
		body := []byte(`{"ref":"refs/heads/main"}`)
		req, _ := http.NewRequest("POST", "/hooks/"+p, bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", "sha256="+source.Sign(nil, body))
		req.Header.Set("X-Gitlab-Token", "")
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s with no secret configured: %d %s", p, rec.Code, rec.Body.String())
		}
	}
}

type muxRouter struct{ *http.ServeMux }

func (m *muxRouter) Handle(p string, _ auth.Scope, h http.Handler) { m.ServeMux.Handle(p, h) }
func (m *muxRouter) HandlePublic(p string, h http.Handler)         { m.ServeMux.Handle(p, h) }
