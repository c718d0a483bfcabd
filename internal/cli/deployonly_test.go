package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestDeployOnlyAfterFailedDeployUsesLiveImages: a deploy of new code that
// fails (its install hook exits 3) records a failed release with new images;
// a deploy-only job after it must redeploy the LIVE release's images, not the
// newest release's.
func TestDeployOnlyAfterFailedDeployUsesLiveImages(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := example(t, "multistore")
	gitInit(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	data := filepath.Join(dir, ".slipway")
	srv, err := server.New(ctx, server.Options{DataDir: data, HTTPAddr: "127.0.0.1:0", Log: io.Discard, StopOnExit: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "us"); code != 0 {
		t.Fatalf("first deploy: %d\n%s", code, stderr)
	}
	// New code for the middleware, and an install hook that fails.
	f := filepath.Join(dir, "apps", "storefront-middleware", "server.js")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, []byte("\n// changed: a new image\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("git", "-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false", "commit", "-qam", "new middleware")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git commit: %v %s", err, out)
	}
	t.Setenv("SLIPWAY_HOOK_INSTALL", "exit 3")
	if code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "us"); code != 1 {
		t.Fatalf("deploy with a failing install hook: exit %d, want 1\n%s", code, stderr)
	}
	t.Setenv("SLIPWAY_HOOK_INSTALL", "")
	if code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "us", "--deploy-only"); code != 0 {
		t.Fatalf("deploy-only: %d\n%s", code, stderr)
	}

	rs, err := server.NewClient(data).Releases(ctx, "us")
	if err != nil || len(rs) != 3 {
		t.Fatalf("releases: %v %d", err, len(rs))
	}
	only, failed, live := rs[0], rs[1], rs[2]
	if failed.Status != state.StatusFailed || live.Status != state.StatusSuperseded || only.Status != state.StatusLive || only.Kind != state.KindDeployOnly {
		t.Fatalf("releases: %s %s, %s %s, %s %s %s", live.ID, live.Status, failed.ID, failed.Status, only.ID, only.Status, only.Kind)
	}
	const app = "storefront-middleware"
	if failed.Images[app].Digest == live.Images[app].Digest {
		t.Fatalf("the failed release has the live image of %s (%s): the test cannot tell them apart", app, live.Images[app].Digest)
	}
	for a, im := range live.Images {
		if got := only.Images[a].Digest; got != im.Digest {
			t.Errorf("%s: deploy-only ran %s, want the live release's %s (the failed release had %s)", a, got, im.Digest, failed.Images[a].Digest)
		}
	}
	if only.Commit != live.Commit {
		t.Errorf("deploy-only commit %s, want the live release's %s", only.Commit, live.Commit)
	}
}
