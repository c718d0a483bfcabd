package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestDeployOnlyAppliesEnvWithoutRebuild: env set, then a deploy-only job reuses
// the live images (same digests, no build) with the new env, as a new release.
func TestDeployOnlyAppliesEnvWithoutRebuild(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := example(t, "multistore")
	gitInit(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: filepath.Join(dir, ".slipway"), HTTPAddr: "127.0.0.1:0", Log: io.Discard, StopOnExit: true})
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
		t.Fatalf("deploy: %d\n%s", code, stderr)
	}
	info := func() map[string]any {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.HTTPAddr()+"/api/info", nil)
		req.Host = "us.localhost"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	if env := info()["env"].(map[string]any); env["CURRENCY"] != "USD" {
		t.Fatalf("config env: %v", env)
	}
	if code, out, stderr := run(t, "env", "set", "CURRENCY=GBP", "-C", dir, "--store-id", "us"); code != 0 || !strings.Contains(out+stderr, "--deploy-only") {
		t.Fatalf("env set: %d %s %s", code, out, stderr)
	}
	code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "us", "--deploy-only")
	if code != 0 || strings.Contains(stderr, "building") {
		t.Fatalf("deploy-only: %d\n%s", code, stderr)
	}
	m := info()
	if env := m["env"].(map[string]any); env["CURRENCY"] != "GBP" || m["release"] != "us-v2" {
		t.Errorf("after deploy-only: %v", m)
	}
	rs, err := server.NewClient(filepath.Join(dir, ".slipway")).Releases(ctx, "us")
	if err != nil || len(rs) != 2 {
		t.Fatalf("releases: %v %v", err, rs)
	}
	if rs[0].Kind != state.KindDeployOnly || rs[0].Commit != rs[1].Commit {
		t.Errorf("deploy-only release: %+v", rs[0])
	}
	for app, im := range rs[1].Images {
		if rs[0].Images[app].Digest != im.Digest {
			t.Errorf("%s: deploy-only changed the image %s -> %s", app, im.Digest, rs[0].Images[app].Digest)
		}
	}
	if rs[0].EnvHash == rs[1].EnvHash {
		t.Errorf("env hash did not change")
	}
}
