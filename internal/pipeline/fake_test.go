package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

// fakeDriver is a tiny in-memory driver: each instance is an httptest server
// whose /healthz answers health; hooks exit with exits[command] (default 0).
// It lets the orchestrator's failure paths run in milliseconds.
type fakeDriver struct {
	mu      sync.Mutex
	health  int
	exits   map[string]int
	running map[string]*fakeInstance
	n       int
	ran     []string
	// startsLeft, when >= 0, is how many more Starts succeed before each fails.
	startsLeft int
	// onRun, if set, is called with each hook's context as it runs.
	onRun func(context.Context)
}

type fakeInstance struct {
	in  driver.Instance
	srv *httptest.Server
}

var _ driver.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{health: 200, exits: map[string]int{}, running: map[string]*fakeInstance{}, startsLeft: -1}
}

func (f *fakeDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "fake", Isolation: "none"}
}

func (f *fakeDriver) Start(_ context.Context, spec driver.Spec) (driver.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startsLeft == 0 {
		return driver.Instance{}, errors.New("fake: no more instances start")
	}
	if f.startsLeft > 0 {
		f.startsLeft--
	}
	f.n++
	release := spec.Labels[driver.LabelRelease]
	health := f.health
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(health)
			return
		}
		io.WriteString(w, release)
	}))
	labels := map[string]string{driver.LabelManaged: "true"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	in := driver.Instance{ID: fmt.Sprintf("fake-%d", f.n), Name: spec.Name, Addr: strings.TrimPrefix(srv.URL, "http://"), Labels: labels, State: "running", Started: time.Now()}
	f.running[in.ID] = &fakeInstance{in: in, srv: srv}
	return in, nil
}

func (f *fakeDriver) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, ok := f.running[id]; ok {
		fi.srv.Close()
		delete(f.running, id)
	}
	return nil
}

func (f *fakeDriver) List(_ context.Context, match map[string]string) ([]driver.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []driver.Instance
	for _, fi := range f.running {
		ok := true
		for k, v := range match {
			if fi.in.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, fi.in)
		}
	}
	return out, nil
}

func (f *fakeDriver) Run(ctx context.Context, spec driver.RunSpec) (int, error) {
	if f.onRun != nil {
		f.onRun(ctx)
	}
	cmd := strings.Join(spec.Cmd, " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, cmd)
	for k, code := range f.exits {
		if strings.Contains(cmd, k) {
			return code, nil
		}
	}
	return 0, nil
}

func (f *fakeDriver) Logs(context.Context, string, io.Writer, bool) error { return nil }

// failStartAfter makes every Start after the next n fail (n < 0: none fails).
func (f *fakeDriver) failStartAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startsLeft = n
}

func (f *fakeDriver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.running)
}

func fakeDeployer(t *testing.T) (*Deployer, *fakeDriver) {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := proxy.NewRouter(filepath.Join(dir, "router.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(); db.Close() })
	fd := newFakeDriver()
	return &Deployer{Driver: fd, Router: rt, State: db, DataDir: dir, LayoutDir: filepath.Join(dir, "images")}, fd
}

func fakeRequest(commit string) DeployRequest {
	digest := "sha256:" + strings.Repeat("a", 64)
	return DeployRequest{Project: "shop", Store: "us", Commit: commit, Kind: state.KindBuildDeploy,
		Apps: []AppDeploy{{App: "web", Image: driver.Image{Ref: "example.com/shop/web@" + digest}, Ref: "example.com/shop/web:" + commit, Digest: digest,
			Port: 3000, Hosts: []string{"us.localhost"},
			Health: proxy.HealthCheck{Path: "/healthz", Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, Deadline: 300 * time.Millisecond}}},
		DrainTimeout: 100 * time.Millisecond}
}

// serving returns the release the router answers us.localhost with.
func serving(t *testing.T, d *Deployer) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://us.localhost/", nil)
	rec := httptest.NewRecorder()
	d.Router.ServeHTTP(rec, req)
	if rec.Code != 200 {
		return fmt.Sprintf("(%d)", rec.Code)
	}
	return rec.Body.String()
}

// TestOrchestratorFailurePaths: against the fake driver, each failure before
// the swap leaves the live release serving and nothing new running, and is
// recorded as failed at its stage; post-deploy failing keeps the new release live.
func TestOrchestratorFailurePaths(t *testing.T) {
	d, fd := fakeDeployer(t)
	ctx := context.Background()
	v1, err := d.Deploy(ctx, fakeRequest("c1"), nil)
	if err != nil || v1.Status != state.StatusLive {
		t.Fatalf("first deploy: %v %+v", err, v1)
	}
	if got := serving(t, d); got != v1.ID {
		t.Fatalf("serving %q, want %s", got, v1.ID)
	}
	before := fd.count()
	cases := []struct {
		name  string
		setup func(*DeployRequest)
		stage string
	}{
		{"pre-deploy fails", func(r *DeployRequest) {
			r.Hooks.PreDeploy = Hook{Command: "maintenance-on"}
			fd.exits["maintenance-on"] = 2
		}, StagePreDeploy},
		{"install fails", func(r *DeployRequest) {
			r.Hooks.Install = Hook{Command: "migrate"}
			fd.exits["migrate"] = 3
		}, StageInstall},
		{"gate fails", func(r *DeployRequest) { fd.mu.Lock(); fd.health = 500; fd.mu.Unlock() }, StageDeploy},
	}
	for i, c := range cases {
		req := fakeRequest(fmt.Sprintf("bad%d", i))
		c.setup(&req)
		t0 := time.Now()
		rel, err := d.Deploy(ctx, req, nil)
		if !errors.Is(err, ErrDeployFailed) || rel == nil || rel.Status != state.StatusFailed || rel.Stage != c.stage {
			t.Errorf("%s: %v %+v", c.name, err, rel)
		}
		if got := serving(t, d); got != v1.ID {
			t.Errorf("%s: serving %q, want the live %s", c.name, got, v1.ID)
		}
		if n := fd.count(); n != before {
			t.Errorf("%s: %d instances running, want the live release's %d", c.name, n, before)
		}
		if r := req.Hooks.PreDeploy.Command + req.Hooks.Install.Command; r != "" && !strings.Contains(strings.Join(fd.ran, "|"), r) {
			t.Errorf("%s: the hook %q never ran (ran %q)", c.name, r, fd.ran)
		}
		if took := time.Since(t0); took > 5*time.Second {
			t.Errorf("%s took %s", c.name, took)
		}
		fd.mu.Lock()
		fd.health, fd.exits = 200, map[string]int{}
		fd.mu.Unlock()
	}
	if cur, err := d.State.Current(ctx, "us"); err != nil || cur.ID != v1.ID {
		t.Fatalf("live release: %v %+v", err, cur)
	}
	// post-deploy fails after the swap: the new release stays live, the error is recorded.
	req := fakeRequest("c2")
	req.Hooks.PostDeploy = Hook{Command: "warm-cache"}
	fd.exits["warm-cache"] = 1
	v2, err := d.Deploy(ctx, req, nil)
	if err == nil || v2 == nil || v2.Status != state.StatusLive || v2.Stage != StagePostDeploy {
		t.Fatalf("post-deploy failure: %v %+v", err, v2)
	}
	if got := serving(t, d); got != v2.ID {
		t.Errorf("serving %q, want %s", got, v2.ID)
	}
	if old, _ := d.State.Release(ctx, v1.ID); old.Status != state.StatusSuperseded {
		t.Errorf("v1: %s", old.Status)
	}
}
