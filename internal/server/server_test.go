package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

type harness struct {
	t    *testing.T
	s    *Server
	dir  string
	stop func()
}

func start(t *testing.T, dir string) *harness {
	t.Helper()
	return serveWith(t, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true})
}

// serveWith starts a server with o (o.DataDir set) and stops it when the
// test ends, or earlier through h.stop.
func serveWith(t *testing.T, o Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		cancel()
		s.closeAll()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	h := &harness{t: t, s: s, dir: o.DataDir}
	h.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(h.stop)
	return h
}

// app publishes a test app image whose /release answers marker and returns its deploy spec.
func (h *harness) app(marker string) pipeline.AppDeploy {
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
	return pipeline.AppDeploy{App: "web", Image: driver.Image{Ref: "oci-layout:" + h.s.Images.Dir() + "@" + d.DigestStr()},
		Ref: ref.String(), Digest: d.DigestStr(), Port: testapp.DefaultPort,
		Health: proxy.HealthCheck{Path: "/healthz", Interval: 50 * time.Millisecond, Timeout: time.Second, Deadline: 10 * time.Second},
		Hosts:  []string{"us.localhost"}}
}

func (h *harness) deploy(req pipeline.DeployRequest) (*state.Release, error, []pipeline.Event) {
	var mu sync.Mutex
	var evs []pipeline.Event
	if req.Project == "" {
		req.Project = "shop"
	}
	if req.Store == "" {
		req.Store = "us"
	}
	if req.Kind == "" {
		req.Kind = state.KindBuildDeploy
	}
	rel, err := NewClient(h.dir).Deploy(context.Background(), req, func(e pipeline.Event) {
		mu.Lock()
		evs = append(evs, e)
		mu.Unlock()
	})
	return rel, err, evs
}

func (h *harness) get(host, path string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.s.HTTPAddr()+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) instances(match map[string]string) []driver.Instance {
	h.t.Helper()
	is, err := h.s.Driver.List(context.Background(), match)
	if err != nil {
		h.t.Fatal(err)
	}
	return is
}

func TestDeployCutoverAndHistory(t *testing.T) {
	h := start(t, t.TempDir())
	if code, body := h.get("us.localhost", "/"); code != 404 || !strings.Contains(body, "No application is deployed") {
		t.Errorf("before any deploy: %d %q", code, body)
	}
	rel1, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatalf("first deploy: %v\n%v", err, evs)
	}
	if code, body := h.get("us.localhost", "/release"); code != 200 || body != rel1.ID {
		t.Fatalf("after v1: %d %q, want %s", code, body, rel1.ID)
	}
	// Redeploy under load: no request fails, each comes from exactly one release.
	var failures, total atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				code, body := h.get("us.localhost", "/release")
				total.Add(1)
				if code != 200 || !strings.HasPrefix(body, "us-v") {
					failures.Add(1)
				}
			}
		}()
	}
	var last *state.Release
	for i := 2; i <= 3; i++ {
		rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: fmt.Sprintf("c%d", i), Apps: []pipeline.AppDeploy{h.app(fmt.Sprintf("v%d", i))}})
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		last = rel
	}
	close(stopLoad)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed during two cutovers", failures.Load(), total.Load())
	}
	if _, body := h.get("us.localhost", "/release"); body != last.ID {
		t.Errorf("serving %q, want %s", body, last.ID)
	}
	// Old instances are stopped: only the live release's remain.
	for _, in := range h.instances(map[string]string{driver.LabelStore: "us"}) {
		if in.Labels[driver.LabelRelease] != last.ID {
			t.Errorf("instance of %s still running", in.Labels[driver.LabelRelease])
		}
	}
	rs, err := NewClient(h.dir).Releases(context.Background(), "us")
	if err != nil || len(rs) != 3 || rs[0].Status != state.StatusLive || rs[1].Status != state.StatusSuperseded {
		t.Errorf("releases: %v %+v", err, rs)
	}
	st, err := NewClient(h.dir).Status(context.Background())
	if err != nil || st.Live["us"] == nil || st.Live["us"].ID != last.ID || len(st.Services) != 1 {
		t.Errorf("status: %v %+v", err, st)
	}
}

func TestUnhealthyReleaseGetsNoTraffic(t *testing.T) {
	h := start(t, t.TempDir())
	rel1, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	bad := h.app("v2")
	bad.Health.Path = "/never-healthy"
	bad.Health.Deadline = 2 * time.Second
	var wrong atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			if code, body := h.get("us.localhost", "/release"); code != 200 || body != rel1.ID {
				wrong.Add(1)
			}
		}
	}()
	begin := time.Now()
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{bad}})
	took := time.Since(begin)
	close(stopLoad)
	wg.Wait()
	if err == nil || !strings.Contains(err.Error(), "status 404") || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("want a gate failure naming the 404, got %v", err)
	}
	if took > bad.Health.Deadline+3*time.Second {
		t.Errorf("failed after %s, deadline %s", took, bad.Health.Deadline)
	}
	if rel == nil || rel.Status != state.StatusFailed || rel.Stage != pipeline.StageDeploy {
		t.Errorf("failed release: %+v", rel)
	}
	if wrong.Load() != 0 {
		t.Errorf("%d requests did not come from the old release", wrong.Load())
	}
	if n := len(h.instances(map[string]string{driver.LabelRelease: rel.ID})); n != 0 {
		t.Errorf("%d instances of the failed release left running", n)
	}
}

func TestHooksAndFailureRules(t *testing.T) {
	h := start(t, t.TempDir())
	v1 := h.app("v1")
	secret := "sk_live_canary_4242"
	// First deploy: pre-deploy is skipped (nothing runs yet), install runs in the new image.
	rel1, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{v1},
		Env: map[string]string{"STRIPE_KEY": secret}, Secrets: []string{"STRIPE_KEY"},
		Hooks: pipeline.Hooks{PreDeploy: pipeline.Hook{Command: "./testapp env TESTAPP_MARKER"}, Install: pipeline.Hook{Command: "./testapp env TESTAPP_MARKER; ./testapp env STRIPE_KEY"}}})
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]state.Stage{}
	for _, s := range rel1.Stages {
		stages[s.Name] = s
	}
	if stages["pre-deploy"].Status != "skipped" || stages["install"].Status != "ok" || !strings.Contains(stages["install"].Output, "v1") {
		t.Errorf("first deploy stages: %+v", rel1.Stages)
	}
	if strings.Contains(stages["install"].Output, secret) || !strings.Contains(stages["install"].Output, "[REDACTED]") {
		t.Errorf("secret not redacted in hook output: %q", stages["install"].Output)
	}
	// Second deploy: pre-deploy runs in the running (v1) image, install in the new (v2) one.
	rel2, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{h.app("v2")},
		Hooks: pipeline.Hooks{PreDeploy: pipeline.Hook{Command: "./testapp env TESTAPP_MARKER"}, Install: pipeline.Hook{Command: "./testapp env TESTAPP_MARKER"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rel2.Stages[0]; got.Name != "pre-deploy" || strings.TrimSpace(got.Output) != "v1" {
		t.Errorf("pre-deploy should run in v1: %+v", got)
	}
	if got := rel2.Stages[1]; got.Name != "install" || strings.TrimSpace(got.Output) != "v2" {
		t.Errorf("install should run in v2: %+v", got)
	}
	// A failing install: no traffic moves, the release is failed with the stage and the output tail.
	rel3, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c3", Apps: []pipeline.AppDeploy{h.app("v3")},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp exit 3"}}})
	if err == nil || rel3.Status != state.StatusFailed || rel3.Stage != "install" || !strings.Contains(err.Error(), "status 3") {
		t.Errorf("failing install: %v %+v", err, rel3)
	}
	if _, body := h.get("us.localhost", "/release"); body != rel2.ID {
		t.Errorf("after a failed install, serving %q, want %s", body, rel2.ID)
	}
	// A hook that times out is killed with everything it started.
	rel4, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c4", Apps: []pipeline.AppDeploy{h.app("v4")},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp tick ticks", Timeout: 500 * time.Millisecond}}})
	if err == nil || !strings.Contains(err.Error(), "timed out") || rel4.Stages[len(rel4.Stages)-1].Status != "timeout" {
		t.Errorf("timeout: %v %+v", err, rel4)
	}
	// The hook's child (a counter written every 50 ms) died with it.
	_, c1 := h.get("us.localhost", "/file?name=ticks")
	time.Sleep(400 * time.Millisecond)
	_, c2 := h.get("us.localhost", "/file?name=ticks")
	if c1 == "" || c1 != c2 {
		t.Errorf("something the timed-out hook started still runs: ticks %q then %q", c1, c2)
	}
	// post-deploy failing: the release stays live, the error says so.
	rel5, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c5", Apps: []pipeline.AppDeploy{h.app("v5")},
		Hooks: pipeline.Hooks{PostDeploy: pipeline.Hook{Command: "./testapp exit 4"}}})
	if err == nil || !strings.Contains(err.Error(), "post-deploy failed") || rel5.Status != state.StatusLive || rel5.Stage != "post-deploy" {
		t.Errorf("post-deploy failure: %v %+v", err, rel5)
	}
	if _, body := h.get("us.localhost", "/release"); body != rel5.ID {
		t.Errorf("post-deploy failure must leave the release live; serving %q", body)
	}
	// The secret appears in no release record.
	rs, _ := NewClient(h.dir).Releases(context.Background(), "us")
	b, _ := json.Marshal(rs)
	if strings.Contains(string(b), secret) {
		t.Errorf("secret value in the release records")
	}
}

func TestDeployLock(t *testing.T) {
	h := start(t, t.TempDir())
	slow := h.app("v1")
	done := make(chan error, 1)
	go func() {
		_, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{slow},
			Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "sleep 1"}}})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	_, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{h.app("v2")}})
	if err == nil || !strings.Contains(err.Error(), "is being deployed by") || !strings.Contains(err.Error(), "c1") {
		t.Errorf("second deploy while locked: %v", err)
	}
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c3", Apps: []pipeline.AppDeploy{h.app("v3")}, Wait: true})
	if err != nil || rel.Number != 2 {
		t.Errorf("--wait: %v %+v", err, rel)
	}
	if err := <-done; err != nil {
		t.Errorf("first deploy: %v", err)
	}
}

func TestRestartRecovers(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir)
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	// Leave behind what a crash would: an orphan instance and a deploying release.
	orphan, err := h.s.Driver.Start(context.Background(), driver.Spec{Image: h.app("v2").Image, Name: "orphan",
		Labels: driver.ManagedLabels("shop", "us", "web", "us-v9", "web")})
	if err != nil {
		t.Fatal(err)
	}
	stuck := &state.Release{Project: "shop", Store: "us", Commit: "c2", Kind: state.KindBuildDeploy, Status: state.StatusDeploying}
	if err := h.s.State.CreateRelease(context.Background(), stuck); err != nil {
		t.Fatal(err)
	}
	// A restart that keeps instances running (serve stopped, not up).
	h.s.o.StopOnExit = false
	h.stop()
	h2 := start(t, dir)
	if code, body := h2.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Errorf("after restart: %d %q", code, body)
	}
	got, _ := h2.s.State.Release(context.Background(), stuck.ID)
	if got.Status != state.StatusInterrupted {
		t.Errorf("stuck release: %+v", got)
	}
	for _, in := range h2.instances(nil) {
		if in.ID == orphan.ID {
			t.Errorf("orphan instance survived the restart")
		}
	}
}

func TestCrashedInstanceIsRestarted(t *testing.T) {
	h := start(t, t.TempDir())
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	_, pid1 := h.get("us.localhost", "/pid")
	h.get("us.localhost", "/crash")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		code, pid2 := h.get("us.localhost", "/pid")
		if code == 200 && pid2 != pid1 {
			if _, body := h.get("us.localhost", "/release"); body != rel.ID {
				t.Errorf("restarted instance serves %q, want %s", body, rel.ID)
			}
			if n := len(h.instances(map[string]string{driver.LabelRelease: rel.ID})); n != 1 {
				t.Errorf("%d instances after the restart, want 1 (the crashed one removed)", n)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the crashed instance was not restarted within 15s")
}

func TestEmbeddedStoreServesV2(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	img := testapp.Image(t, testapp.Options{})
	ref, _ := name.ParseReference("slipway.local/shop/web:abc")
	d, err := s.Images.Publish(ctx, ref, img)
	if err != nil {
		t.Fatal(err)
	}
	// The /v2/ listener needs a read token: none, or a bad one, is refused.
	tok, err := NewClient(dir).CreateToken(ctx, TokenRequest{Name: "puller", Scope: auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	login := remote.WithAuth(&authn.Basic{Username: "puller", Password: tok.Token})
	anon, _ := name.ParseReference(s.RegistryAddr()+"/shop/web:abc", name.Insecure)
	var terr *transport.Error
	if _, err := remote.Image(anon); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want 401", err)
	}
	if _, err := remote.Image(anon, remote.WithAuth(&authn.Basic{Username: "x", Password: "slw_bogus"})); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("pull with a bad token: %v, want 401", err)
	}
	// With the token, any OCI client pulls it by tag and by digest.
	for _, r := range []string{s.RegistryAddr() + "/shop/web:abc", s.RegistryAddr() + "/shop/web@" + d.DigestStr()} {
		pr, err := name.ParseReference(r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(pr, login)
		if err != nil {
			t.Fatalf("pull %s: %v", r, err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("pulled %s does not validate: %v", r, err)
		}
		gd, _ := got.Digest()
		if gd.String() != d.DigestStr() {
			t.Errorf("digest %s, want %s", gd, d.DigestStr())
		}
	}
	t.Run("docker pull", func(t *testing.T) {
		if testenv.RequireDocker(t) == "" {
			return
		}
		r := s.RegistryAddr() + "/shop/web@" + d.DigestStr()
		testenv.DockerLogin(t, s.RegistryAddr(), "puller", tok.Token)
		testenv.Docker(t, "pull", r)
		testenv.Docker(t, "rmi", r)
	})
	// It is read-only.
	other, _ := name.ParseReference(s.RegistryAddr()+"/shop/other:x", name.Insecure)
	if err := remote.Write(other, img, login); err == nil {
		t.Errorf("push to the read-only store succeeded")
	}
}

type noDNS struct{}

func (noDNS) LookupHost(context.Context, string) ([]string, error) {
	return nil, errors.New("no such host")
}

func TestDataDirAndDestructive(t *testing.T) {
	h := start(t, t.TempDir())
	h.s.Deployer.Resolver = noDNS{}
	app := h.app("v1")
	// A hook writes into the store's persistent directory; the app reads it; it survives releases.
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{app},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp write seed from-install"}}}); err != nil {
		t.Fatal(err)
	}
	if code, body := h.get("us.localhost", "/file?name=seed"); code != 200 || body != "from-install" {
		t.Fatalf("app reading the hook's data file: %d %q", code, body)
	}
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{h.app("v2")}}); err != nil {
		t.Fatal(err)
	}
	if code, body := h.get("us.localhost", "/file?name=seed"); code != 200 || body != "from-install" {
		t.Errorf("data did not survive a release: %d %q", code, body)
	}
	// Destructive: /data is emptied, then the destructive install runs (the normal one does not).
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c3", Destructive: true, Apps: []pipeline.AppDeploy{h.app("v3")},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp write normal yes"}, DestructiveInstall: pipeline.Hook{Command: "./testapp write reset yes"}}})
	if err != nil || !rel.Destructive {
		t.Fatal(err)
	}
	if code, _ := h.get("us.localhost", "/file?name=seed"); code != 404 {
		t.Errorf("destructive deploy kept the old data (%d)", code)
	}
	if code, _ := h.get("us.localhost", "/file?name=reset"); code != 200 {
		t.Errorf("destructive install did not run (%d)", code)
	}
	if code, _ := h.get("us.localhost", "/file?name=normal"); code != 404 {
		t.Errorf("the normal install ran in a destructive deploy (%d)", code)
	}
	// verify: an unresolvable domain is a warning by default, an error when configured.
	withDomain := h.app("v4")
	withDomain.Hosts = append(withDomain.Hosts, "shop.example.invalid")
	rel, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c4", Apps: []pipeline.AppDeploy{withDomain}})
	warned := false
	for _, e := range evs {
		warned = warned || strings.Contains(e.Message, "does not resolve")
	}
	if err != nil || !warned {
		t.Errorf("dns warning: %v, warned=%v", err, warned)
	}
	rel, err, _ = h.deploy(pipeline.DeployRequest{Commit: "c5", DNS: "error", Apps: []pipeline.AppDeploy{withDomain}})
	if err == nil || rel.Status != state.StatusLive || rel.Stage != pipeline.StageVerify {
		t.Errorf("dns error: %v %+v", err, rel)
	}
}

func TestRemovedOrRenamedAppLosesItsRoute(t *testing.T) {
	h := start(t, t.TempDir())
	web, api := h.app("v1"), h.app("v1")
	api.App, api.Hosts = "api", []string{"api.us.localhost"}
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{web, api}}); err != nil {
		t.Fatal(err)
	}
	// The storefront is renamed (another framework's app takes us.localhost) and api is dropped.
	shop := h.app("v2")
	shop.App = "shop"
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{shop}})
	if err != nil {
		t.Fatalf("deploy with a renamed app: %v", err)
	}
	if code, body := h.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Errorf("us.localhost: %d %q", code, body)
	}
	if code, _ := h.get("api.us.localhost", "/release"); code != 404 {
		t.Errorf("the dropped app still answers: %d", code)
	}
	for _, s := range h.s.Router.Services() {
		if s.Name != "us/shop" {
			t.Errorf("stale route %s", s.Name)
		}
	}
}
