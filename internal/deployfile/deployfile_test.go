package deployfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
)

const slipwayYAML = `project: shop
apps:
  - {id: web, path: apps/web, framework: next}
  - {id: shop-nuxt, path: apps/shop-nuxt, framework: nuxt}
  - {id: middleware, path: apps/middleware}
stores:
  brand: {template: true, framework: next}
  us: {projectName: brand-us, region: us-east-1}
  eu: {projectName: brand-eu, region: eu-west-1}
  sport: {projectName: sport, region: eu-west-1, framework: nuxt}
`

// repo writes a monorepo with a two-level store tree (brand > us, eu; sport)
// plus files, and loads its config.
func repo(t *testing.T, files map[string]string) *config.Config {
	t.Helper()
	root := t.TempDir()
	all := map[string]string{
		"slipway.yaml":                 slipwayYAML,
		"apps/web/":                    "",
		"apps/shop-nuxt/":              "",
		"apps/middleware/":             "",
		"apps/stores/brand/stores/us/": "",
		"apps/stores/brand/stores/eu/": "",
		"apps/stores/sport/":           "",
	}
	for k, v := range files {
		all[k] = v
	}
	for p, content := range all {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func noEnv(string) string { return "" }

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func load(t *testing.T, cfg *config.Config, store string, getenv func(string) string) Effective {
	t.Helper()
	eff, err := Load(cfg, store, WithGetenv(getenv))
	if err != nil {
		t.Fatal(err)
	}
	return eff
}

func problemsOf(t *testing.T, err error) []config.Problem {
	t.Helper()
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *config.ValidationError, got %v", err)
	}
	return ve.Problems
}

// hasProblem fails unless a problem is located at file:line:col and its text holds every want.
func hasProblem(t *testing.T, ps []config.Problem, file string, line, col int, want ...string) {
	t.Helper()
	for _, p := range ps {
		if p.File != file || p.Line != line || p.Column != col {
			continue
		}
		s := p.String()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return
		}
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	t.Errorf("no problem at %s:%d:%d containing %q; got:\n%s", file, line, col, want, strings.Join(got, "\n"))
}

func TestDefaultsWithoutFiles(t *testing.T) {
	cfg := repo(t, nil)
	eff := load(t, cfg, "us", noEnv)
	for _, k := range Keys {
		h := eff.Hook(k)
		if h.Key != k || h.Command != "" || h.Source != SourceDefault || h.App != "" || h.Timeout != 0 {
			t.Errorf("%s: %+v", k, *h)
		}
	}
	if len(eff.Files) != 0 || len(eff.Warnings) != 0 {
		t.Errorf("files %v warnings %v", eff.Files, eff.Warnings)
	}
}

func TestPrecedenceRootParentStoreEnv(t *testing.T) {
	cfg := repo(t, map[string]string{
		"deploy.yml": `hooks:
  pre-deploy:  {command: "npm run maintenance:on", app: middleware, timeout: 2m}
  install:     {command: "node migrate.js", timeout: 10m}
  destructive-install: {command: "node migrate.js --reset"}
  post-deploy: "node warm-cache.js"
`,
		"apps/stores/brand/deploy.yml": `hooks:
  install: {command: "node migrate.js --brand", app: web}
  post-deploy: node warm-brand.js
`,
		"apps/stores/brand/stores/us/deploy.yml": `# us only
hooks:
  post-deploy: {command: node warm-us.js, timeout: 30s}
`,
	})
	eff := load(t, cfg, "us", noEnv)
	want := map[string]Hook{
		KeyPreDeploy:          {Key: KeyPreDeploy, Command: "npm run maintenance:on", App: "middleware", Timeout: 2 * time.Minute, Source: "deploy.yml:2"},
		KeyInstall:            {Key: KeyInstall, Command: "node migrate.js --brand", App: "web", Source: "apps/stores/brand/deploy.yml:2"},
		KeyDestructiveInstall: {Key: KeyDestructiveInstall, Command: "node migrate.js --reset", Source: "deploy.yml:4"},
		KeyPostDeploy:         {Key: KeyPostDeploy, Command: "node warm-us.js", Timeout: 30 * time.Second, Source: "apps/stores/brand/stores/us/deploy.yml:3"},
	}
	for k, w := range want {
		if got := *eff.Hook(k); got != w {
			t.Errorf("us %s:\n got %+v\nwant %+v", k, got, w)
		}
	}
	if got := strings.Join(eff.Files, ","); got != "deploy.yml,apps/stores/brand/deploy.yml,apps/stores/brand/stores/us/deploy.yml" {
		t.Errorf("files = %s", got)
	}
	// The sibling inherits the parent's, not us's; the install's timeout is not
	// merged from the root file (the nearest file gives the whole hook).
	eu := load(t, cfg, "eu", noEnv)
	if eu.PostDeploy.Command != "node warm-brand.js" || eu.PostDeploy.Source != "apps/stores/brand/deploy.yml:3" || eu.Install.Timeout != 0 {
		t.Errorf("eu: %+v / %+v", eu.PostDeploy, eu.Install)
	}
	// Another branch of the tree sees the root file only.
	sport := load(t, cfg, "sport", noEnv)
	if sport.Install.Command != "node migrate.js" || sport.Install.Timeout != 10*time.Minute || sport.Install.Source != "deploy.yml:3" {
		t.Errorf("sport install: %+v", sport.Install)
	}

	// The environment beats every file and keeps the overridden hook's app and timeout.
	eff = load(t, cfg, "us", env(map[string]string{EnvPreDeploy: "true", EnvInstall: "./migrate.sh", EnvPostDeploy: ""}))
	if h := eff.PreDeploy; h.Command != "true" || h.Source != "env SLIPWAY_HOOK_BEFORE_DEPLOY" || h.Overrides != "deploy.yml:2" || h.App != "middleware" || h.Timeout != 2*time.Minute {
		t.Errorf("env pre-deploy: %+v", h)
	}
	if h := eff.Install; h.Command != "./migrate.sh" || h.Source != "env SLIPWAY_HOOK_INSTALL" || h.App != "web" {
		t.Errorf("env install: %+v", h)
	}
	if h := eff.PostDeploy; h.Command != "node warm-us.js" {
		t.Errorf("an empty variable must not override: %+v", h)
	}
	// Over the default, the environment sets a bare command.
	eff = load(t, repo(t, nil), "us", env(map[string]string{EnvDestructiveInstall: "reset.sh"}))
	if h := eff.DestructiveInstall; h.Command != "reset.sh" || h.Source != "env SLIPWAY_HOOK_DESTRUCTIVE_INSTALL" || h.Overrides != "" {
		t.Errorf("env over default: %+v", h)
	}
}

func TestClearing(t *testing.T) {
	cfg := repo(t, map[string]string{
		"deploy.yml": `hooks:
  pre-deploy: maintenance-on
  install: migrate
  destructive-install: reset
  post-deploy: {command: warm, app: middleware}
`,
		"apps/stores/brand/deploy.yml": `hooks:
  pre-deploy: null
  install: ""
  destructive-install: ~
  post-deploy:
`,
		"apps/stores/brand/stores/us/deploy.yml": "hooks:\n  install: migrate-us\n",
	})
	eu := load(t, cfg, "eu", noEnv)
	for i, k := range Keys {
		h := eu.Hook(k)
		if h.Command != "" || !h.Cleared || h.App != "" || h.Source != "apps/stores/brand/deploy.yml:"+string(rune('2'+i)) {
			t.Errorf("eu %s should be cleared by brand: %+v", k, *h)
		}
	}
	us := load(t, cfg, "us", noEnv)
	if us.Install.Command != "migrate-us" || us.Install.Cleared || !us.PreDeploy.Cleared {
		t.Errorf("a nearer file sets a cleared hook again: %+v %+v", us.Install, us.PreDeploy)
	}
	// The environment sets a cleared hook again too; there is nothing it overrides.
	eu = load(t, cfg, "eu", env(map[string]string{EnvPostDeploy: "warm-env"}))
	if h := eu.PostDeploy; h.Command != "warm-env" || h.Cleared || h.Overrides != "" || h.App != "" {
		t.Errorf("env over cleared: %+v", h)
	}
	// A file without a key, with an empty hooks mapping, or empty, inherits everything.
	for _, body := range []string{"", "# nothing yet\n", "hooks:\n", "hooks: {}\n"} {
		cfg := repo(t, map[string]string{"deploy.yml": "hooks:\n  install: migrate\n", "apps/stores/brand/deploy.yml": body})
		if h := load(t, cfg, "us", noEnv).Install; h.Command != "migrate" || h.Source != "deploy.yml:2" {
			t.Errorf("%q: %+v", body, h)
		}
	}
}

func TestErrorsAreLocated(t *testing.T) {
	cfg := repo(t, map[string]string{
		"deploy.yml": `hooks:
  pre-deploy: {command: x, timout: 2m}
  instal: migrate
  before-deploy: x
  post-deploy: true
  destructive-install: {app: web}
`,
		"apps/stores/brand/deploy.yml": `hook:
  install: x
`,
		"apps/stores/brand/stores/us/deploy.yml": `hooks:
  install: {command: "", timeout: 0s}
  pre-deploy: {command: x, timeout: soon}
  post-deploy: [a, b]
  destructive-install: {command: x}
  destructive-install: {command: y}
`,
	})
	_, err := Load(cfg, "us", WithGetenv(noEnv))
	ps := problemsOf(t, err)
	hasProblem(t, ps, "deploy.yml", 2, 28, `unknown key "hooks.pre-deploy.timout"`, `did you mean "timeout"?`)
	hasProblem(t, ps, "deploy.yml", 3, 3, `unknown hook "hooks.instal"`, `did you mean "install"?`)
	hasProblem(t, ps, "deploy.yml", 4, 3, `unknown hook "hooks.before-deploy"`, `did you mean "pre-deploy"?`)
	hasProblem(t, ps, "deploy.yml", 5, 16, "is not a command", `quote it: "true"`)
	hasProblem(t, ps, "deploy.yml", 6, 3, `missing key "command"`, "destructive-install: null")
	hasProblem(t, ps, "apps/stores/brand/deploy.yml", 1, 1, `unknown key "hook"`, `did you mean "hooks"?`)
	us := "apps/stores/brand/stores/us/deploy.yml"
	hasProblem(t, ps, us, 2, 22, "command is empty", "install: null")
	hasProblem(t, ps, us, 2, 35, "must be positive")
	hasProblem(t, ps, us, 3, 37, `"soon" is not a duration`)
	hasProblem(t, ps, us, 4, 16, "found a list", "&&")
	hasProblem(t, ps, us, 6, 3, `duplicate key "hooks.destructive-install"`, "first defined at line 5")
	if !strings.Contains(err.Error(), "deploy.yml:2:28: error: unknown key") {
		t.Errorf("the error text names file:line:col:\n%v", err)
	}

	_, err = Load(repo(t, map[string]string{"deploy.yml": "hooks:\n  install: {command: x\n"}), "us")
	hasProblem(t, problemsOf(t, err), "deploy.yml", 1, 1, "syntax error", "did not find expected")
	_, err = Load(repo(t, map[string]string{"deploy.yml": "- hooks\n"}), "us")
	hasProblem(t, problemsOf(t, err), "deploy.yml", 1, 1, `mapping with the key "hooks"`)
	_, err = Load(repo(t, nil), "uss")
	if !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), `did you mean "us"?`) {
		t.Errorf("unknown store: %v", err)
	}
}

func TestAppValidation(t *testing.T) {
	cfg := repo(t, map[string]string{
		// web is a next app: fine for us, not for the nuxt store sport.
		"deploy.yml": "hooks:\n  install: {command: migrate, app: web}\n  post-deploy: {command: warm, app: midleware}\n",
	})
	_, err := Load(cfg, "us", WithGetenv(noEnv))
	ps := problemsOf(t, err)
	hasProblem(t, ps, "deploy.yml", 3, 37, `no app "midleware"`, `did you mean "middleware"?`)
	if len(ps) != 1 {
		t.Errorf("only the unknown app is wrong for us: %v", ps)
	}
	_, err = Load(cfg, "sport", WithGetenv(noEnv))
	hasProblem(t, problemsOf(t, err), "deploy.yml", 2, 36, `store sport has no app "web"`, "its apps: shop-nuxt, middleware", "override the hook in apps/stores/sport/deploy.yml")

	// Overridden in sport's own file, the root's app no longer matters for it.
	cfg = repo(t, map[string]string{
		"deploy.yml":                   "hooks:\n  install: {command: migrate, app: web}\n",
		"apps/stores/sport/deploy.yml": "hooks:\n  install: {command: migrate, app: shop-nuxt}\n",
	})
	if h := load(t, cfg, "sport", noEnv).Install; h.App != "shop-nuxt" {
		t.Errorf("sport install: %+v", h)
	}
	// In the store's own file the hint is a did-you-mean among its apps.
	cfg = repo(t, map[string]string{"apps/stores/sport/deploy.yml": "hooks:\n  install: {command: migrate, app: web}\n"})
	_, err = Load(cfg, "sport", WithGetenv(noEnv))
	hasProblem(t, problemsOf(t, err), "apps/stores/sport/deploy.yml", 2, 36, `store sport has no app "web"`)
}

func TestLookAlikeAndSymlink(t *testing.T) {
	cfg := repo(t, map[string]string{"apps/stores/brand/deploy.yaml": "hooks:\n  install: x\n"})
	eff := load(t, cfg, "us", noEnv)
	if len(eff.Warnings) != 1 || !strings.Contains(eff.Warnings[0].String(), "apps/stores/brand/deploy.yaml: warning: ignored: Slipway reads deploy.yml") {
		t.Errorf("warnings: %v", eff.Warnings)
	}
	if eff.Install.Command != "" {
		t.Errorf("deploy.yaml must not be read: %+v", eff.Install)
	}

	outside := filepath.Join(t.TempDir(), "deploy.yml")
	os.WriteFile(outside, []byte("hooks:\n  install: x\n"), 0o644)
	cfg = repo(t, nil)
	if err := os.Symlink(outside, filepath.Join(cfg.Root, "deploy.yml")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(cfg, "us")
	hasProblem(t, problemsOf(t, err), "deploy.yml", 0, 0, "not a regular file")
}

func TestEnvVar(t *testing.T) {
	for _, k := range Keys {
		if !strings.HasPrefix(EnvVar(k), "SLIPWAY_HOOK_") {
			t.Errorf("%s: %q", k, EnvVar(k))
		}
	}
	if EnvVar("nope") != "" {
		t.Error("unknown key")
	}
}
