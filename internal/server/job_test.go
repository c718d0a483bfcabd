package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

const jobConfig = `project: shop
apps:
  - id: web
    path: apps/web
    framework: next
    port: 3000
    health: {path: /healthz, interval: 50ms}
stores:
  us:
    projectName: shop-us
    region: us-east-1
    framework: next
    domains: [us.example.com]
    env: {FROM_CONFIG: "1", OVERRIDDEN: config}
    secrets: [API_KEY]
  eu:
    projectName: shop-eu
    region: eu-west-1
    framework: next
    secrets: [API_KEY]
`

// startRepo starts a server on <repo>/.slipway for a small repository whose
// config serve deploys with; it returns the harness and the repo.
func startRepo(t *testing.T, cfg string) *harness {
	t.Helper()
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "apps", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(repo, "apps", "web", "package.json"), []byte(`{"name":"web"}`), 0o644)
	for _, st := range []string{"us", "eu"} {
		os.MkdirAll(filepath.Join(repo, "apps", "stores", st), 0o755)
	}
	// eu's install hook fails: TestJobIsolatesFailures needs one broken store.
	os.WriteFile(filepath.Join(repo, "apps", "stores", "eu", "deploy.yml"), []byte("hooks:\n  install: {command: \"exit 3\"}\n"), 0o644)
	if err := os.WriteFile(filepath.Join(repo, "slipway.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return start(t, filepath.Join(repo, ".slipway"))
}

// publish puts a test app image in serve's store and returns its reference.
func (h *harness) publish(marker string) api.ImageRef {
	h.t.Helper()
	img := testapp.Image(h.t, testapp.Options{GOOS: runtime.GOOS, Env: map[string]string{"TESTAPP_MARKER": marker}})
	ref, err := name.ParseReference("slipway.local/shop/web:" + marker)
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := h.s.Images.Publish(context.Background(), ref, img)
	if err != nil {
		h.t.Fatal(err)
	}
	return api.ImageRef{Store: "us", App: "web", Ref: ref.String(), Digest: d.DigestStr()}
}

func (h *harness) job(jr api.JobRequest) ([]StoreResult, error) {
	return NewClient(h.dir).DeployStores(context.Background(), jr, nil)
}

// TestPlanJobMergesEnvAndSecrets: serve merges config env < stored env <
// supplied secrets, reads hooks from the request only, and never reads a NAME_FILE.
func TestPlanJobMergesEnvAndSecrets(t *testing.T) {
	h := startRepo(t, jobConfig)
	ctx := context.Background()
	if err := h.s.State.SetEnv(ctx, "us", map[string]*string{"OVERRIDDEN": ptr("stored"), "STORED": ptr("2")}); err != nil {
		t.Fatal(err)
	}
	im := h.publish("v1")
	t.Setenv("SLIPWAY_HOOK_INSTALL", "echo from serve's own environment")
	reqs, err := h.s.PlanJob(ctx, api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Commit: "c1", Images: []api.ImageRef{im},
		Secrets: map[string]string{"API_KEY": "k-123456", "API_KEY_FILE": "/etc/passwd"}, Hooks: map[string]string{"SLIPWAY_HOOK_AFTER_DEPLOY": "echo done"}})
	if err != nil {
		t.Fatal(err)
	}
	r := reqs[0]
	want := map[string]string{"FROM_CONFIG": "1", "OVERRIDDEN": "stored", "STORED": "2", "API_KEY": "k-123456"}
	for k, v := range want {
		if r.Env[k] != v {
			t.Errorf("env %s = %q, want %q (%v)", k, r.Env[k], v, r.Env)
		}
	}
	if r.Hooks.Install.Command != "" || r.Hooks.PostDeploy.Command != "echo done" {
		t.Errorf("hooks: %+v", r.Hooks)
	}
	if got := r.Apps[0].Image.Ref; got != "oci-layout:"+h.s.Images.Dir()+"@"+im.Digest || r.Apps[0].Digest != im.Digest {
		t.Errorf("image: %s %s", got, r.Apps[0].Digest)
	}
	if !strings.Contains(strings.Join(r.Apps[0].Hosts, " "), "us.example.com") {
		t.Errorf("hosts: %v", r.Apps[0].Hosts)
	}
	// A secret named NAME_FILE in the request is never read as a path on the server.
	if _, err := h.s.PlanJob(ctx, api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{im},
		Secrets: map[string]string{"API_KEY_FILE": "/etc/hostname"}}); err == nil || !strings.Contains(err.Error(), "API_KEY") {
		t.Errorf("a secret from a file on serve's disk: %v", err)
	}
}

func ptr(s string) *string { return &s }

// TestJobRefusesNonsense: each nonsense request the issue lists answers 400
// naming the field, and changes nothing (no release, no route, no instance).
func TestJobRefusesNonsense(t *testing.T) {
	h := startRepo(t, jobConfig)
	h.s.o.Limits.MaxInstances = 8
	good := h.publish("v1")
	sec := map[string]string{"API_KEY": "k-123456"}
	other := t.TempDir()
	cases := []struct {
		name  string
		jr    api.JobRequest
		field string
	}{
		{"empty store id", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{""}, Images: []api.ImageRef{good}, Secrets: sec}, "stores[0]"},
		{"path as store", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"../../etc"}, Secrets: sec}, "stores[0]"},
		{"unknown store", api.JobRequest{Kind: api.KindDeployOnly, Stores: []string{"mars"}}, "stores[0]"},
		{"no store", api.JobRequest{Kind: api.KindDeployOnly}, "stores"},
		{"unknown kind", api.JobRequest{Kind: "yolo", Stores: []string{"us"}}, "kind"},
		{"20 instances, beyond a cap of 8", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{good}, Secrets: sec, Instances: map[string]int{"web": 20}}, "instances.web"},
		{"zero instances", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{good}, Secrets: sec, Instances: map[string]int{"web": 0}}, "instances.web"},
		{"long commit", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{good}, Secrets: sec, Commit: strings.Repeat("a", 4096)}, "commit"},
		{"image in another layout", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Secrets: sec,
			Images: []api.ImageRef{{Store: "us", App: "web", Ref: "oci-layout:" + other + "@" + good.Digest, Digest: good.Digest}}}, "images[0].ref"},
		{"digest mismatch", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Secrets: sec,
			Images: []api.ImageRef{{Store: "us", App: "web", Ref: good.Ref, Digest: "sha256:" + strings.Repeat("0", 64)}}}, "images[0].digest"},
		{"registry not allowed", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Secrets: sec,
			Images: []api.ImageRef{{Store: "us", App: "web", Ref: "evil.example.com/shop/web:v1"}}}, "images[0].ref"},
		{"missing image", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Secrets: sec}, "images"},
		{"missing secret", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{good}}, "stores[0]"},
		{"deploy-only before any deploy", api.JobRequest{Kind: api.KindDeployOnly, Stores: []string{"us"}, Secrets: sec}, "stores[0]"},
		{"hook variable unknown", api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us"}, Images: []api.ImageRef{good}, Secrets: sec, Hooks: map[string]string{"LD_PRELOAD": "x"}}, "hooks"},
	}
	for _, c := range cases {
		code, field := postJSON(t, h, "/v1/deploys", c.jr)
		if code != 400 || field != c.field {
			t.Errorf("%s: %d field %q, want 400 %q", c.name, code, field, c.field)
		}
	}
	// A 150 MB commit string is cut off at 1 MiB.
	code, field := postRaw(t, h, "/v1/deploys", io.MultiReader(strings.NewReader(`{"kind":"build-deploy","stores":["us"],"commit":"`), &repeatReader{n: 150 << 20}))
	if code != 400 || field != "body" {
		t.Errorf("150 MB commit: %d %q", code, field)
	}
	assertNothingChanged(t, h)
}

// TestDeploySpecRefusesNonsense: the whole-spec route (POST /v1/deploy) checks the same.
func TestDeploySpecRefusesNonsense(t *testing.T) {
	h := startRepo(t, jobConfig)
	h.s.o.Limits.MaxInstances = 8
	good := h.app("v1")
	spec := func(f func(*pipeline.DeployRequest)) pipeline.DeployRequest {
		r := pipeline.DeployRequest{Project: "shop", Store: "us", Kind: "build-deploy", Apps: []pipeline.AppDeploy{good}}
		f(&r)
		return r
	}
	other := t.TempDir()
	cases := []struct {
		name  string
		req   pipeline.DeployRequest
		field string
	}{
		{"empty store", spec(func(r *pipeline.DeployRequest) { r.Store = "" }), "store"},
		{"path as store", spec(func(r *pipeline.DeployRequest) { r.Store = "../../etc" }), "store"},
		{"20 instances, beyond a cap of 8", spec(func(r *pipeline.DeployRequest) { r.Apps[0].Instances = 20 }), "apps[0].instances"},
		{"wildcard host", spec(func(r *pipeline.DeployRequest) { r.Apps[0].Hosts = []string{"*.localhost"} }), "apps[0].hosts[0]"},
		{"bad host", spec(func(r *pipeline.DeployRequest) { r.Apps[0].Hosts = []string{"a b/c"} }), "apps[0].hosts[0]"},
		{"long commit", spec(func(r *pipeline.DeployRequest) { r.Commit = strings.Repeat("f", 1000) }), "commit"},
		{"digest mismatch", spec(func(r *pipeline.DeployRequest) { r.Apps[0].Digest = "sha256:" + strings.Repeat("1", 64) }), "apps[0].digest"},
		{"image from another layout", spec(func(r *pipeline.DeployRequest) {
			r.Apps[0].Ref = "oci-layout:" + other + "@" + r.Apps[0].Digest
		}), "apps[0].ref"},
	}
	for _, c := range cases {
		code, field := postJSON(t, h, "/v1/deploy", c.req)
		if code != 400 || field != c.field {
			t.Errorf("%s: %d field %q, want 400 %q", c.name, code, field, c.field)
		}
	}
	// The runtime reference a caller sends is never run: serve resolves its own.
	req := spec(func(r *pipeline.DeployRequest) { r.Apps[0].Image.Ref = "oci-layout:" + other + "@" + r.Apps[0].Digest })
	if rel, err := NewClient(h.dir).Deploy(context.Background(), req, nil); err != nil || rel.Status != state.StatusLive {
		t.Fatalf("good spec with a foreign runtime ref: %v %+v", err, rel)
	}
	rs, _ := NewClient(h.dir).Releases(context.Background(), "us")
	if len(rs) != 1 || rs[0].Status != state.StatusLive || rs[0].Images["web"].Digest != good.Digest {
		t.Fatalf("releases: %+v", rs)
	}
}

func assertNothingChanged(t *testing.T, h *harness) {
	t.Helper()
	for _, st := range []string{"us", "eu", "", "../../etc"} {
		if rs, _ := h.s.State.Releases(context.Background(), st, 0); len(rs) != 0 {
			t.Errorf("store %q has releases: %+v", st, rs)
		}
	}
	if svcs := h.s.Router.Services(); len(svcs) != 0 {
		t.Errorf("routes: %+v", svcs)
	}
	if is := h.instances(nil); len(is) != 0 {
		t.Errorf("instances: %+v", is)
	}
}

func postJSON(t *testing.T, h *harness, path string, v any) (int, string) {
	b, _ := json.Marshal(v)
	return postRaw(t, h, path, bytes.NewReader(b))
}

func postRaw(t *testing.T, h *harness, path string, body io.Reader) (int, string) {
	t.Helper()
	c := NewClient(h.dir)
	req, _ := http.NewRequest(http.MethodPost, "http://slipway"+path, body)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	var e struct{ Field string }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Field
}

// repeatReader yields n bytes of 'a' without holding them.
type repeatReader struct{ n int }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n)
	for i := range k {
		p[i] = 'a'
	}
	r.n -= k
	return k, nil
}

// TestJobIsolatesFailures: in one job, a store whose install hook fails fails
// alone; the other deploys; each result says which and why.
func TestJobIsolatesFailures(t *testing.T) {
	h := startRepo(t, jobConfig)
	us := h.publish("v1")
	eu := us
	eu.Store = "eu"
	var mu sync.Mutex
	var lines []string
	res, err := NewClient(h.dir).DeployStores(context.Background(), api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us", "eu"}, Commit: "c1",
		Images: []api.ImageRef{us, eu}, Secrets: map[string]string{"API_KEY": "k-123456"}}, func(e pipeline.Event) {
		mu.Lock()
		lines = append(lines, e.Store+": "+e.Message)
		mu.Unlock()
	})
	if err != nil || len(res) != 2 {
		t.Fatalf("job: %v %+v", err, res)
	}
	for _, r := range res {
		switch r.Store {
		case "us":
			if r.Err != nil || r.Release == nil || r.Release.Status != state.StatusLive {
				t.Errorf("us: %v %+v", r.Err, r.Release)
			}
		case "eu":
			if r.Err == nil || !strings.Contains(r.Err.Error(), "install") || r.Release == nil || r.Release.Status != state.StatusFailed {
				t.Errorf("eu: %v %+v", r.Err, r.Release)
			}
		}
	}
	if code, _ := h.get("us.example.com", "/healthz"); code != 200 {
		t.Errorf("us is not served: %d", code)
	}
	if len(lines) == 0 {
		t.Error("no events streamed")
	}
}
