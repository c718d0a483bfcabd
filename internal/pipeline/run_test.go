package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/state"
)

func mustDeploy(t *testing.T, d *Deployer, req DeployRequest) *state.Release {
	t.Helper()
	rel, err := d.Deploy(context.Background(), req, nil)
	if err != nil || rel.Status != state.StatusLive {
		t.Fatalf("deploy of %s: %v %+v", req.Commit, err, rel)
	}
	return rel
}

// stillServing checks that a failed run moved no traffic and left nothing of
// its own running: live is served and recorded live, and n instances run.
func stillServing(t *testing.T, d *Deployer, fd *fakeDriver, what string, live *state.Release, n int) {
	t.Helper()
	if got := serving(t, d); got != live.ID {
		t.Errorf("%s: serving %q, want the live %s", what, got, live.ID)
	}
	if cur, err := d.State.Current(context.Background(), live.Store); err != nil || cur.ID != live.ID {
		t.Errorf("%s: live release %v %+v, want %s", what, err, cur, live.ID)
	}
	if got := fd.count(); got != n {
		t.Errorf("%s: %d instances running, want the live release's %d", what, got, n)
	}
}

// TestStageFailuresAtTheDeployStage: an instance that does not start and a
// swap that cannot happen (the router cannot save its state) each fail the
// release at the deploy stage, stop every instance the run started, and
// leave the live release serving.
func TestStageFailuresAtTheDeployStage(t *testing.T) {
	d, fd := fakeDeployer(t)
	v1 := mustDeploy(t, d, fakeRequest("c1"))
	before := fd.count()
	routerFile := filepath.Join(d.DataDir, "router.json")
	cases := []struct {
		name  string
		setup func(*DeployRequest) (undo func())
		want  string
	}{
		{"second instance does not start", func(r *DeployRequest) func() {
			r.Apps[0].Instances = 2
			fd.failStartAfter(1)
			return func() { fd.failStartAfter(-1) }
		}, "starting web"},
		{"swap cannot save the router state", func(*DeployRequest) func() {
			if err := os.Remove(routerFile); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(routerFile, "in-the-way"), 0o700); err != nil {
				t.Fatal(err)
			}
			return func() { os.RemoveAll(routerFile) }
		}, "router.json"},
	}
	for _, c := range cases {
		req := fakeRequest("bad")
		undo := c.setup(&req)
		t0 := time.Now()
		rel, err := d.Deploy(context.Background(), req, nil)
		undo()
		if !errors.Is(err, ErrDeployFailed) || rel == nil || rel.Status != state.StatusFailed || rel.Stage != StageDeploy || !strings.Contains(rel.Error, c.want) {
			t.Errorf("%s: %v %+v, want failed at deploy naming %q", c.name, err, rel, c.want)
			continue
		}
		if stored, _ := d.State.Release(context.Background(), rel.ID); stored.Status != state.StatusFailed || stored.FinishedAt.IsZero() {
			t.Errorf("%s: stored %s, finished %v", c.name, stored.Status, stored.FinishedAt)
		}
		stillServing(t, d, fd, c.name, v1, before)
		if took := time.Since(t0); took > 2*time.Second {
			t.Errorf("%s took %s", c.name, took)
		}
	}
	// Once the cause is gone the store deploys again.
	v3 := mustDeploy(t, d, fakeRequest("c3"))
	stillServing(t, d, fd, "after the failures", v3, before)
}

// TestDeployRunsToItsEndOnceLocked: a caller gone before the run takes the
// lock changes nothing; one that goes away later, before or after the swap,
// does not leave a half-run deploy: hooks run with a live context, the
// release goes live and its record is finished.
func TestDeployRunsToItsEndOnceLocked(t *testing.T) {
	d, fd := fakeDeployer(t)
	v1 := mustDeploy(t, d, fakeRequest("c1"))
	before := fd.count()

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if rel, err := d.Deploy(gone, fakeRequest("c2"), nil); err == nil || rel != nil {
		t.Fatalf("deploy for a caller already gone: %v %+v", err, rel)
	}
	if rs, _ := d.State.Releases(context.Background(), "us", 0); len(rs) != 1 {
		t.Fatalf("a deploy refused before the lock recorded %d releases", len(rs))
	}
	stillServing(t, d, fd, "cancelled before the lock", v1, before)

	live := v1
	for _, when := range []string{StageInstall, StagePostDeploy} {
		ctx, cancel := context.WithCancel(context.Background())
		req := fakeRequest("c-" + when)
		if when == StageInstall {
			req.Hooks.Install = Hook{Command: "migrate"} // before the swap
		} else {
			req.Hooks.PostDeploy = Hook{Command: "warm-cache"} // after it
		}
		var hookCtxErr error
		fd.onRun = func(ctx context.Context) {
			cancel()
			hookCtxErr = ctx.Err()
		}
		rel, err := d.Deploy(ctx, req, nil)
		fd.onRun = nil
		if err != nil || rel.Status != state.StatusLive || rel.Stage != "" {
			t.Errorf("cancelled during %s: %v %+v, want live", when, err, rel)
			continue
		}
		if hookCtxErr != nil {
			t.Errorf("cancelled during %s: the hook's context was cancelled too: %v", when, hookCtxErr)
		}
		if stored, _ := d.State.Release(context.Background(), rel.ID); stored.Status != state.StatusLive || stored.FinishedAt.IsZero() {
			t.Errorf("cancelled during %s: stored %s, finished %v", when, stored.Status, stored.FinishedAt)
		}
		if old, _ := d.State.Release(context.Background(), live.ID); old.Status != state.StatusSuperseded {
			t.Errorf("cancelled during %s: the previous release is %s", when, old.Status)
		}
		stillServing(t, d, fd, "cancelled during "+when, rel, before)
		live = rel
	}
}
