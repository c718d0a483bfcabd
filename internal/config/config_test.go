package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
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
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestLoadExamples(t *testing.T) {
	// The example holds both formats: slipway.yaml (found first) and Alokai's alokai.config.json.
	for _, file := range []string{"slipway.yaml", "alokai.config.json"} {
		t.Run(file, func(t *testing.T) {
			cfg, err := Load(filepath.Join(repoRoot(t), "examples/multistore"), file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(cfg.DeployableIDs(), ","); got != "eu,sports-brand,us" {
				t.Errorf("deployable = %s", got)
			}
			fb := cfg.Store("fashion-brand")
			if fb == nil || !fb.Template {
				t.Fatalf("fashion-brand should be a template: %+v", fb)
			}
			if strings.Join(fb.Children, ",") != "eu,us" {
				t.Errorf("children = %v", fb.Children)
			}
			if p := cfg.Store("us").Parent; p != "fashion-brand" {
				t.Errorf("us parent = %q", p)
			}
			var apps []string
			for _, a := range cfg.AppsFor("us") {
				apps = append(apps, a.ID)
			}
			if strings.Join(apps, ",") != "storefront-unified-nextjs,storefront-middleware" {
				t.Errorf("apps for us = %v", apps)
			}
			if cfg.File != file {
				t.Errorf("loaded %s", cfg.File)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("warnings: %v", cfg.Warnings)
			}
		})
	}
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	return ve.Problems
}

// find returns the problem whose message contains s.
func find(ps []Problem, s string) *Problem {
	for i := range ps {
		if strings.Contains(ps[i].Message, s) {
			return &ps[i]
		}
	}
	return nil
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `project: demo
apps:
  - id: web
    path: apps/web
    framework: next
    helth: {path: /up}
stores:
  a:
    projectName: a
    region: r
    framework: nuxt
  b:
    region: r
    framework: next
  c:
    template: true
    parent: ghost
  d:
    template: true
    parent: e
  e:
    template: true
    parent: d
  nodir:
    template: true
  dup:
    template: true
`,
		"apps/web/index.js":             "x",
		"apps/stores/a/":                "",
		"apps/stores/b/":                "",
		"apps/stores/c/":                "",
		"apps/stores/d/":                "",
		"apps/stores/e/":                "",
		"apps/stores/dup/":              "",
		"apps/stores/b/stores/dup/":     "",
		"apps/stores/unlisted/web/x.js": "x",
		"apps/stores/a/wbe/typo.js":     "x",
	})
	_, err := Load(root, "")
	ps := problemsOf(t, err)
	cases := []struct {
		msg        string
		line, col  int
		hint, file string
	}{
		{msg: `unknown key "apps[0].helth"`, line: 6, col: 5, hint: `did you mean "health"?`},
		{msg: `framework "nuxt" has no base app`, line: 8, col: 3},
		{msg: `deployable store "b" is missing projectName`, line: 12, col: 3},
		{msg: `parent "ghost" does not exist`, line: 15, col: 3},
		{msg: `parent cycle d -> e -> d`, line: 18},
		{msg: `store "nodir" has no directory`, line: 24},
		{msg: `duplicate store id "dup"`, file: "apps/stores/dup"},
	}
	for _, c := range cases {
		p := find(ps, c.msg)
		if p == nil {
			t.Errorf("missing problem %q in:\n%v", c.msg, err)
			continue
		}
		if p.Severity != Error {
			t.Errorf("%q should be an error", c.msg)
		}
		if c.line != 0 && p.Line != c.line {
			t.Errorf("%q at line %d, want %d", c.msg, p.Line, c.line)
		}
		if c.col != 0 && p.Column != c.col {
			t.Errorf("%q at column %d, want %d", c.msg, p.Column, c.col)
		}
		if c.hint != "" && p.Hint != c.hint {
			t.Errorf("%q hint %q, want %q", c.msg, p.Hint, c.hint)
		}
		if c.file == "" && p.File != "slipway.yaml" {
			t.Errorf("%q names file %q", c.msg, p.File)
		}
		if c.file != "" && !strings.HasPrefix(p.File, c.file) {
			t.Errorf("%q names file %q, want %s", c.msg, p.File, c.file)
		}
	}
	// Warnings travel with the errors: an unlisted store dir and a folder matching no app.
	if p := find(ps, "no entry in slipway.yaml"); p == nil || p.Severity != Warning {
		t.Errorf("want a warning for the unlisted store dir: %v", p)
	}
	// Each problem prints as file:line:col: level: message.
	if s := find(ps, "helth").String(); !strings.HasPrefix(s, "slipway.yaml:6:5: error: ") {
		t.Errorf("String() = %q", s)
	}
}

func TestTemplatesNeedNoDeployKeys(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml":                      "apps: [{path: apps/web, framework: next}]\nstores:\n  brand: {template: true}\n  us: {projectName: us, region: r1, framework: next}\n",
		"apps/web/a":                        "",
		"apps/stores/brand/stores/us/web/a": "",
		"apps/stores/brand/web/b":           "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store("us").Parent != "brand" || cfg.Framework("us") != "next" {
		t.Errorf("us: %+v", cfg.Store("us"))
	}
}

func TestFrameworkAndEnvInherit(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `apps: [{path: apps/web, framework: next}]
stores:
  brand: {template: true, framework: next, env: {A: "1", B: "brand"}}
  us: {projectName: us, region: r1, env: {B: us, PORTISH: 3000}}
`,
		"apps/web/a":                   "",
		"apps/stores/brand/stores/us/": "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Framework("us") != "next" {
		t.Errorf("framework not inherited")
	}
	env := cfg.Env("us")
	if env["A"] != "1" || env["B"] != "us" || env["PORTISH"] != "3000" {
		t.Errorf("env = %v", env)
	}
}

func TestAlokaiFormat(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"alokai.config.json": `{
  "stores": {
    "us": {"projectName": "us-prod", "region": "us-east-1", "framework": "next", "somethingAlokaiKnows": true},
    "de": {"projectName": "de-prod", "region": "eu-central-1"}
  }
}`,
		"apps/storefront-unified-nextjs/package.json": "{}",
		"apps/storefront-middleware/package.json":     "{}",
		"apps/stores/brand/stores/us/":                "",
		"apps/stores/de/":                             "",
	})
	_, err := Load(root, "")
	ps := problemsOf(t, err)
	p := find(ps, `deployable store "de" is missing framework`)
	if p == nil || p.Line != 4 || p.File != "alokai.config.json" {
		t.Fatalf("want missing framework for de at alokai.config.json:4, got %v", err)
	}
	// Keys Alokai knows and Slipway does not are warnings, not errors, in Alokai's file.
	if w := find(ps, "somethingAlokaiKnows"); w == nil || w.Severity != Warning {
		t.Errorf("unknown alokai key should warn: %v", w)
	}
	// brand has no entry: in this layout that is a template store, silently.
	if find(ps, "brand") != nil {
		t.Errorf("brand should be a silent template: %v", err)
	}

	write(t, root, map[string]string{"alokai.config.json": "{\n  \"stores\": {\n    \"us\": {\"projectName\": \"us\",,}\n  }\n}"})
	_, err = Load(root, "")
	ps = problemsOf(t, err)
	if len(ps) != 1 || ps[0].Line != 3 || !strings.Contains(ps[0].Message, "syntax error") {
		t.Errorf("syntax error should be located at line 3: %v", err)
	}
}

func TestSymlinkedAppDirRejected(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write(t, root, map[string]string{"slipway.yaml": "apps: [{path: apps/web}]\n"})
	os.MkdirAll(filepath.Join(root, "apps"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "apps/web")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(root, "")
	if p := find(problemsOf(t, err), "apps/web is a symlink"); p == nil {
		t.Errorf("want symlink rejection, got %v", err)
	}
	write(t, root, map[string]string{"slipway.yaml": "apps: [{path: ../elsewhere}]\n"})
	_, err = Load(root, "")
	if p := find(problemsOf(t, err), "contains '..'"); p == nil {
		t.Errorf("want .. rejection, got %v", err)
	}
}

func TestFindWalksUp(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"slipway.yaml": "apps: []\n", "apps/x/": ""})
	got, err := Find(filepath.Join(root, "apps", "x"), "")
	if err != nil || got != filepath.Join(root, "slipway.yaml") {
		t.Errorf("Find = %q, %v", got, err)
	}
	if _, err := Find(t.TempDir(), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("want ErrNotFound, got %v", err)
	}
}

func TestDidYouMean(t *testing.T) {
	if h := DidYouMean("framwork", []string{"framework", "region"}); h != `did you mean "framework"?` {
		t.Errorf("got %q", h)
	}
	if h := DidYouMean("zzz", []string{"framework"}); h != "" {
		t.Errorf("got %q", h)
	}
}
