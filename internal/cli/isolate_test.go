package cli

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestDeployAllIsolatesABrokenStore: with --all, eu's build fails and
// sports-brand's install hook fails; us still deploys, the summary names both
// failures and why, and the exit code is 1.
func TestDeployAllIsolatesABrokenStore(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := example(t, "multistore")
	// eu's storefront has a build script that fails.
	eu := filepath.Join(dir, "apps", "stores", "fashion-brand", "stores", "eu", "storefront-unified-nextjs", "package.json")
	if err := os.WriteFile(eu, []byte(`{"name":"eu","scripts":{"build":"echo broken eu build >&2; exit 7"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// sports-brand's install hook fails.
	hook := filepath.Join(dir, "apps", "stores", "sports-brand", "deploy.yml")
	if err := os.WriteFile(hook, []byte("hooks:\n  install: {command: \"exit 3\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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

	code, out, stderr := run(t, "deploy", "-C", dir, "--all")
	if code != ExitFailed {
		t.Fatalf("deploy --all with broken stores: exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	if !strings.Contains(rows["us"], "live") || !strings.Contains(rows["eu"], "build failed") || !strings.Contains(rows["sports-brand"], "failed") {
		t.Errorf("summary:\n%s", out)
	}
	for _, want := range []string{"eu: build of storefront-unified-nextjs failed", "sports-brand: ", "install", "2 of 3 store(s) failed (eu, sports-brand)"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	c := server.NewClient(data)
	if rs, _ := c.Releases(ctx, "us"); len(rs) != 1 || rs[0].Status != state.StatusLive {
		t.Errorf("us releases: %+v", rs)
	}
	if rs, _ := c.Releases(ctx, "eu"); len(rs) != 0 {
		t.Errorf("eu was deployed after its build failed: %+v", rs)
	}
	if rs, _ := c.Releases(ctx, "sports-brand"); len(rs) != 1 || rs[0].Status != state.StatusFailed {
		t.Errorf("sports-brand releases: %+v", rs)
	}
}
