package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// example copies an example monorepo into a temp dir.
func example(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "examples", name)
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.RemoveAll(filepath.Join(dst, ".out"))
	os.RemoveAll(filepath.Join(dst, ".slipway"))
	return dst
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	root := newRoot(&globals{})
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" || c.Short == "" {
			t.Errorf("%s: needs Short and Example", c.Name())
		}
		code, out, _ := run(t, c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help: code %d\n%s", c.Name(), code, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "slipway ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	dir := example(t, "multistore")
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"validate", "-C", dir}, 0, ""},
		{[]string{"nonsense"}, 2, "unknown command"},
		{[]string{"compose", "-C", dir, "--bogus"}, 2, "unknown flag"},
		{[]string{"compose", "-C", dir}, 2, "--store-id ID"},
		{[]string{"compose", "-C", dir, "--store-id", "uss"}, 2, `did you mean "us"?`},
		{[]string{"compose", "-C", dir, "--store-id", "fashion-brand"}, 2, "template store"},
		{[]string{"compose", "-C", dir, "--all", "--store-id", "us"}, 2, "exclude each other"},
		{[]string{"compose", "-C", t.TempDir(), "--all"}, 2, "no slipway.yaml"},
		{[]string{"changed", "-C", dir}, 2, "--since REF is required"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.err) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.err)
		}
	}
}

func TestComposeExampleAndEnvFlags(t *testing.T) {
	dir := example(t, "multistore")
	t.Setenv("SLIPWAY_STORE_ID", "us,eu")
	t.Setenv("SLIPWAY_DIR", dir)
	code, out, stderr := run(t, "compose", "--json")
	if code != 0 {
		t.Fatalf("compose: %d %s", code, stderr)
	}
	var res []struct {
		Store string
		Apps  []struct{ App, Fingerprint string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(res) != 2 || res[0].Store != "us" || res[1].Store != "eu" {
		t.Fatalf("stores from SLIPWAY_STORE_ID: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, ".out/sports-brand")); err == nil {
		t.Errorf("sports-brand composed though not selected")
	}
	b, err := os.ReadFile(filepath.Join(dir, ".out/us/storefront-unified-nextjs/components/header.js"))
	if err != nil || !strings.Contains(string(b), "Fashion Brand") {
		t.Errorf("us header should come from fashion-brand: %v %s", err, b)
	}
	// A flag beats the environment.
	code, out, _ = run(t, "compose", "--store-id", "sports-brand")
	if code != 0 || !strings.Contains(out, "sports-brand") || strings.Contains(out, "us ") {
		t.Errorf("flag should win over env: %d %s", code, out)
	}
}

func TestInvalidConfigChangesNothing(t *testing.T) {
	dir := example(t, "multistore")
	if code, _, stderr := run(t, "compose", "-C", dir, "--all"); code != 0 {
		t.Fatal(stderr)
	}
	snap := func() string {
		out, _ := exec.Command("sh", "-c", "cd "+dir+"/.out && find . -printf '%p %s %i %T@\\n' | sort").Output()
		return string(out)
	}
	before := snap()
	cfgPath := filepath.Join(dir, "slipway.yaml")
	orig, _ := os.ReadFile(cfgPath)
	for name, edit := range map[string]string{
		"missing parent": addUnder(string(orig), "us", "parent: nowhere"),
		"cycle":          addUnder(addUnder(string(orig), "fashion-brand", "parent: sports-brand"), "sports-brand", "parent: fashion-brand"),
		"unknown key":    addUnder(string(orig), "us", "regoin: x"),
	} {
		if edit == string(orig) {
			t.Fatalf("%s: edit did not apply", name)
		}
		os.WriteFile(cfgPath, []byte(edit), 0o644)
		code, _, stderr := run(t, "compose", "-C", dir, "--all")
		if code != 2 || !strings.Contains(stderr, "slipway.yaml:") {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr)
		}
		if after := snap(); after != before {
			t.Errorf("%s: .out changed", name)
		}
		code, _, stderr = run(t, "validate", "-C", dir)
		if code != 2 {
			t.Errorf("%s: validate exit %d %s", name, code, stderr)
		}
	}
	os.WriteFile(cfgPath, orig, 0o644)
}

func TestStoresTreeAndJSON(t *testing.T) {
	// An Alokai user's layout: alokai.config.json only, no slipway.yaml, zero edits.
	dir := example(t, "multistore")
	os.Remove(filepath.Join(dir, "slipway.yaml"))
	code, out, stderr := run(t, "stores", "-C", dir)
	if code != 0 {
		t.Fatal(stderr)
	}
	for _, want := range []string{"fashion-brand", "├── eu", "└── us", "deployable", "template", "us-east-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("stores output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, "stores", "-C", dir, "--json")
	var rows []struct {
		ID, Kind, Parent, Framework string
		Apps                        []string
	}
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 4 {
		t.Fatalf("stores --json: %d %s", code, out)
	}
	for _, r := range rows {
		if r.ID == "us" && (r.Parent != "fashion-brand" || r.Framework != "next" || len(r.Apps) != 2) {
			t.Errorf("us row: %+v", r)
		}
	}
}

// addUnder inserts a key line below a store's entry in the stores mapping.
func addUnder(yaml, store, line string) string {
	re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(store) + `:.*$`)
	return re.ReplaceAllStringFunc(yaml, func(m string) string { return m + "\n    " + line })
}

func gitInit(t *testing.T, dir string) {
	t.Helper()
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-q", "-m", "initial"}} {
		c := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
}

func TestBuildCommand(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := example(t, "multistore")
	gitInit(t, dir)
	code, out, stderr := run(t, "build", "-C", dir, "--store-id", "sports-brand", "--json")
	if code != 0 {
		t.Fatalf("build: %d\n%s", code, stderr)
	}
	var imgs []struct {
		Store, App, Ref, Digest string
		UpToDate                bool
	}
	if err := json.Unmarshal([]byte(out), &imgs); err != nil || len(imgs) != 2 {
		t.Fatalf("json: %v %s", err, out)
	}
	code, out, _ = run(t, "build", "-C", dir, "--store-id", "sports-brand")
	if code != 0 || strings.Count(out, "up to date") != 2 {
		t.Errorf("second build should be up to date:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "apps/storefront-middleware/new.js"), []byte("x"), 0o644)
	code, _, stderr = run(t, "build", "-C", dir, "--store-id", "sports-brand")
	if code != 2 || !strings.Contains(stderr, "--allow-dirty") {
		t.Errorf("dirty tree: exit %d, %s", code, stderr)
	}
	code, out, stderr = run(t, "build", "-C", dir, "--store-id", "sports-brand", "--allow-dirty")
	if code != 0 || !strings.Contains(out, "-dirty-") {
		t.Errorf("--allow-dirty: exit %d\n%s\n%s", code, out, stderr)
	}
	// A failing build fails its store only, and the command exits 1.
	os.WriteFile(filepath.Join(dir, "apps/stores/fashion-brand/stores/eu/storefront-unified-nextjs/package.json"), []byte(`{"scripts":{"build":"echo broken >&2; exit 7"}}`), 0o644)
	code, out, stderr = run(t, "build", "-C", dir, "--store-id", "eu", "--store-id", "us", "--allow-dirty")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(stderr, "[eu/storefront-unified-nextjs] broken") {
		t.Errorf("failing build: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "us ") && strings.Contains(line, "FAILED") {
			t.Errorf("us must still build: %s", line)
		}
	}
}

func TestDestructiveNeedsConfirmOnProtectedStores(t *testing.T) {
	dir := example(t, "multistore")
	cfgPath := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(addUnder(string(b), "us", "protected: true")), 0o644)
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"deploy", "-C", dir, "--store-id", "us", "--destructive"}, "--confirm us"},
		{[]string{"deploy", "-C", dir, "--store-id", "us", "--destructive", "--confirm", "eu"}, "--confirm us"},
		{[]string{"deploy", "-C", dir, "--store-id", "us", "--confirm", "us"}, "only goes with --destructive"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.err) {
			t.Errorf("%v: exit %d %q", c.args, code, stderr)
		}
	}
	// Not protected: allowed past the check (then it needs a server, which is not running).
	code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "eu", "--destructive", "--state-dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "no slipway serve is running") {
		t.Errorf("unprotected destructive: exit %d %q", code, stderr)
	}
}
