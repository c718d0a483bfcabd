package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/deployfile"
	"github.com/slipway-dev/slipway/internal/gitfs"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// runCmds runs args like run, adding the pipeline and env commands to the root
// when root.go does not list them yet (once it does, this is plain run).
func runCmds(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	has := map[string]bool{}
	for _, c := range newRoot(&globals{}).Commands() {
		has[c.Name()] = true
	}
	if has["pipeline"] && has["env"] {
		return run(t, args...)
	}
	var out, errb bytes.Buffer
	g := &globals{stdout: &out, stderr: &errb}
	root := newRoot(g)
	for name, mk := range map[string]func(*globals) *cobra.Command{"pipeline": newPipelineCmd, "env": newEnvCmd} {
		if !has[name] {
			root.AddCommand(mk(g))
		}
	}
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(context.Background())
	// What Execute does with an error.
	code := ExitOK
	if err != nil {
		fmt.Fprintln(&errb, "error:", err)
		var ue *usageError
		var ve *config.ValidationError
		switch {
		case errors.As(err, &ue), errors.As(err, &ve), errors.Is(err, config.ErrNotFound), errors.Is(err, gitfs.ErrDirty), isCobraUsage(err):
			code = ExitUsage
		default:
			code = ExitFailed
		}
	}
	return code, out.String(), errb.String()
}

// noHookEnv keeps the test's own environment out of the hooks.
func noHookEnv(t *testing.T) {
	for _, k := range deployfile.Keys {
		t.Setenv(deployfile.EnvVar(k), "")
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// pipelineRepo is the multistore example with a root deploy.yml, one for the
// fashion-brand template and one for its child store us.
func pipelineRepo(t *testing.T) string {
	dir := example(t, "multistore")
	writeFiles(t, dir, map[string]string{
		"deploy.yml": `hooks:
  pre-deploy:  {command: "npm run maintenance:on", app: storefront-middleware, timeout: 2m}
  install:     {command: "node migrate.js", timeout: 10m}
  destructive-install: {command: "node migrate.js --reset"}
  post-deploy: "node warm-cache.js"
`,
		"apps/stores/fashion-brand/deploy.yml": "hooks:\n  post-deploy: null\n",
		"apps/stores/fashion-brand/stores/us/deploy.yml": `hooks:
  install: {command: "node migrate.js --store us", app: storefront-middleware}
`,
	})
	return dir
}

func TestPipelineCommand(t *testing.T) {
	noHookEnv(t)
	dir := pipelineRepo(t)
	code, out, stderr := runCmds(t, "pipeline", "-C", dir, "--store-id", "us")
	if code != 0 {
		t.Fatalf("pipeline: %d %s", code, stderr)
	}
	for _, want := range []string{
		"Deploy pipeline of store us",
		"deploy files: deploy.yml, apps/stores/fashion-brand/deploy.yml, apps/stores/fashion-brand/stores/us/deploy.yml",
		"1. pre-deploy            npm run maintenance:on\n",
		"app storefront-middleware, timeout 2m, from deploy.yml:2\n",
		"pre-deploy is skipped on a store's first deploy",
		"2. install               node migrate.js --store us\n",
		"app storefront-middleware, timeout 10m (default), from apps/stores/fashion-brand/stores/us/deploy.yml:2\n",
		"   destructive-install   node migrate.js --reset\n",
		"app storefront-unified-nextjs (default: the store's first app), timeout 10m (default), from deploy.yml:4\n",
		"runs instead of install with `slipway deploy --destructive`",
		"3. deploy                built in:",
		"4. post-deploy           no hook (cleared at apps/stores/fashion-brand/deploy.yml:2)\n",
		"5. verify                built in:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A variable overrides the command and says so; JSON carries the same.
	t.Setenv(deployfile.EnvInstall, "./migrate.sh")
	code, out, stderr = runCmds(t, "pipeline", "-C", dir, "--store-id", "us", "--json")
	if code != 0 {
		t.Fatalf("pipeline --json: %d %s", code, stderr)
	}
	var v pipelineView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	var stages []string
	for _, s := range v.Stages {
		stages = append(stages, s.Stage+"/"+s.Pipeline)
	}
	if got := strings.Join(stages, " "); got != "pre-deploy/ install/normal install/destructive deploy/ post-deploy/ verify/" {
		t.Errorf("stages: %s", got)
	}
	in := v.Stages[1].Hook
	if in.Command != "./migrate.sh" || in.Source != "env SLIPWAY_HOOK_INSTALL" || in.Overrides != "apps/stores/fashion-brand/stores/us/deploy.yml:2" ||
		in.App != "storefront-middleware" || in.Timeout != "10m" || !in.TimeoutDefault {
		t.Errorf("install: %+v", in)
	}
	if pd := v.Stages[4].Hook; pd.Command != "" || !pd.Cleared {
		t.Errorf("post-deploy: %+v", pd)
	}
	if !strings.Contains(v.Stages[0].Note, "skipped on a store's first deploy") || !v.Stages[3].BuiltIn {
		t.Errorf("notes: %+v", v.Stages)
	}

	// Another store sees the root file alone.
	t.Setenv(deployfile.EnvInstall, "")
	code, out, _ = runCmds(t, "pipeline", "-C", dir, "--store-id", "sports-brand")
	if code != 0 || !strings.Contains(out, "4. post-deploy           node warm-cache.js\n") || !strings.Contains(out, "from deploy.yml:3") {
		t.Errorf("sports-brand: %d\n%s", code, out)
	}
}

func TestPipelineCommandErrors(t *testing.T) {
	noHookEnv(t)
	dir := example(t, "multistore")
	// No deploy files at all: defaults.
	code, out, _ := runCmds(t, "pipeline", "-C", dir, "--store-id", "eu")
	if code != 0 || !strings.Contains(out, "deploy files: none") || strings.Count(out, "no hook (default)") != 4 {
		t.Errorf("defaults: %d\n%s", code, out)
	}
	writeFiles(t, dir, map[string]string{"apps/stores/sports-brand/deploy.yml": "hooks:\n  install: {command: x, app: storefront-unified-nextjs}\n  postdeploy: y\n"})
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"pipeline", "-C", dir}, 2, "--store-id ID"},
		{[]string{"pipeline", "-C", dir, "--store-id", "us", "--store-id", "eu"}, 2, "takes one store"},
		{[]string{"pipeline", "-C", dir, "--store-id", "fashion-brand"}, 2, "template store"},
		{[]string{"pipeline", "-C", dir, "--store-id", "sports-brand"}, 2, "apps/stores/sports-brand/deploy.yml:2:30: error: hooks.install.app: store sports-brand has no app \"storefront-unified-nextjs\""},
		{[]string{"pipeline", "-C", dir, "--store-id", "sports-brand"}, 2, `apps/stores/sports-brand/deploy.yml:3:3: error: unknown hook "hooks.postdeploy" (did you mean "post-deploy"?)`},
	}
	for _, c := range cases {
		code, _, stderr := runCmds(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.err)
		}
	}
}

func TestPipelineHooksAdapter(t *testing.T) {
	eff := deployfile.Effective{
		PreDeploy:          deployfile.Hook{Command: "a", App: "x", Timeout: time.Minute, Source: "deploy.yml:2"},
		Install:            deployfile.Hook{Command: "b"},
		DestructiveInstall: deployfile.Hook{Command: "c", Timeout: time.Second},
		PostDeploy:         deployfile.Hook{Cleared: true, Source: "deploy.yml:5"},
	}
	got := pipelineHooks(eff)
	want := pipeline.Hooks{
		PreDeploy:          pipeline.Hook{Command: "a", App: "x", Timeout: time.Minute},
		Install:            pipeline.Hook{Command: "b"},
		DestructiveInstall: pipeline.Hook{Command: "c", Timeout: time.Second},
	}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", time.Hour: "1h", 90 * time.Second: "1m30s", 1500 * time.Millisecond: "1.5s", 61 * time.Minute: "1h1m"} {
		if got := fmtDuration(d); got != want {
			t.Errorf("%s: %s, want %s", d, got, want)
		}
	}
}
