//go:build integration

package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestRolloutStopsAtMaxFailures deploys six stores for real (process
// runtime), makes s2 and s3 crash on start through their runtime env, then
// runs a deploy-only rollout: canary c, waves of two, --max-failures 2,
// --rollback-wave. Wave 2 (s3, s4) holds the second failure: s5 is never
// deployed, s4 (live in that wave) is rolled back, s3 still serves its old
// release.
func TestRolloutStopsAtMaxFailures(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := t.TempDir()
	stores := []string{"c", "s1", "s2", "s3", "s4", "s5"}
	var cfg strings.Builder
	cfg.WriteString(`project: waves
apps:
  - id: web
    path: apps/web
    framework: next
    build: "true"
    port: 3000
    health: {path: /healthz, interval: 100ms, deadline: 3s}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js"]}
stores:
`)
	files := map[string]string{
		"apps/web/server.js": `if (process.env.CRASH) { console.error("crashing on purpose"); process.exit(3); }
const http = require("http");
const server = http.createServer((req, res) => res.end(req.url === "/healthz" ? "ok" : (process.env.SLIPWAY_RELEASE || "?")));
server.listen(Number(process.env.PORT || 3000), process.env.HOST || "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`,
		".gitignore": ".out/\n.slipway/\n",
	}
	for _, s := range stores {
		fmt.Fprintf(&cfg, "  %s: {projectName: waves-%s, region: local, framework: next}\n", s, s)
		files["apps/stores/"+s+"/README.md"] = s + "\n"
	}
	files["slipway.yaml"] = cfg.String()
	writeFiles(t, dir, files)
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "waves"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	data := filepath.Join(dir, ".slipway")
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: data, HTTPAddr: "127.0.0.1:0", Log: io.Discard, StopOnExit: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if code, out, stderr := run(t, "deploy", "-C", dir, "--all"); code != 0 {
		t.Fatalf("first deploy --all: %d\n%s\n%s", code, out, stderr)
	}
	for _, s := range []string{"s2", "s3"} {
		if code, _, stderr := run(t, "env", "set", "CRASH=1", "-C", dir, "--store-id", s); code != 0 {
			t.Fatalf("env set: %d %s", code, stderr)
		}
	}
	code, out, stderr := run(t, "deploy", "-C", dir, "--all", "--deploy-only",
		"--canary", "c", "--wave", "2", "--max-failures", "2", "--rollback-wave")
	if code != 1 {
		t.Fatalf("rollout: exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"== canary (1/4): c", "== wave 1 (2/4): s1, s2", "== wave 2 (3/4): s3, s4",
		"rollout stopped after wave 2: 2 store(s) failed (--max-failures 2); 1 store(s) not deployed", "rolling back wave 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "wave 3 (4/4)") {
		t.Errorf("wave 3 ran:\n%s", out)
	}
	c := server.NewClient(data)
	live := func(store string) (*state.Release, int) {
		rs, err := c.Releases(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Status == state.StatusLive {
				return r, len(rs)
			}
		}
		return nil, len(rs)
	}
	if r, n := live("s5"); n != 1 || r == nil || r.ID != "s5-v1" {
		t.Errorf("s5 after the stop: %d releases, live %+v; want only the first deploy", n, r)
	}
	if r, _ := live("s4"); r == nil || r.Kind != state.KindRollback {
		t.Errorf("s4: live %+v, want a rollback release (it went live in the stopping wave)", r)
	}
	if r, _ := live("s3"); r == nil || r.ID != "s3-v1" {
		t.Errorf("s3: live %+v, want its first release still serving (its deploy failed before the swap)", r)
	}
	if r, _ := live("s1"); r == nil || r.ID != "s1-v2" {
		t.Errorf("s1: live %+v, want s1-v2 (wave 1 is not rolled back)", r)
	}
}
