package cli

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// serveWithSource starts serve (process runtime) with the push service on
// the repository g, so that `deploy --commit` builds from it; it returns the
// state dir.
func serveWithSource(t *testing.T, g *testenv.GitRepo) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true, ConfigDir: g.Clone})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	svc, err := push.Open(ctx, push.Options{DataDir: dir, Jobs: 2, Source: source.Options{URL: g.Bare, Branch: "main"}},
		push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	svc.Mount(srv)
	svc.Start(ctx)
	serveCtx, stopServe := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(serveCtx); close(done) }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		svc.Stop(sctx)
		cancel()
		stopServe()
		<-done
	})
	return dir
}

// TestCommitRolloutInWaves: `deploy --commit SHA --all --wave 1` has serve
// build and deploy the commit one store per wave, canary first, each wave's
// table printed, every store live on that commit; --dry-run with --commit is
// refused, naming why, and deploys nothing.
func TestCommitRolloutInWaves(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	g := testenv.NewGitRepo(t)
	dir := serveWithSource(t, g)
	sha := g.Commit("main", "a change for the fleet", map[string]string{"apps/storefront-middleware/fleet.txt": "wave\n"})

	code, _, stderr := run(t, "deploy", "-C", g.Clone, "--state-dir", dir, "--commit", sha, "--all", "--dry-run")
	if code != ExitUsage || !strings.Contains(stderr, "--dry-run plans from the working tree") {
		t.Errorf("--dry-run with --commit: exit %d, want %d and why\n%s", code, ExitUsage, stderr)
	}

	code, stdout, stderr := run(t, "deploy", "-C", g.Clone, "--state-dir", dir, "--commit", sha, "--all", "--canary", "us", "--wave", "1")
	if code != 0 {
		t.Fatalf("deploy --commit --wave: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"== canary (1/", "== wave 1 (2/", "rollout: ", " 0 failed, 0 not deployed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if i, j := strings.Index(stdout, "== canary"), strings.Index(stdout, "== wave 1"); i < 0 || j < i {
		t.Errorf("the canary was not deployed first:\n%s", stdout)
	}
	db, err := state.Open(context.Background(), dir+"/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{"us", "eu"} {
		r, err := db.Current(context.Background(), s)
		if err != nil || r.Commit != sha {
			t.Errorf("store %s: live %+v %v, want commit %s", s, r, err, sha)
		}
	}
}
