package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
)

// serve starts a real server on dataDir for the test's lifetime.
func serve(t *testing.T, dataDir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.New(ctx, server.Options{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", Log: io.Discard})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.Serve(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// envRepo is the multistore example where us has a secret and fashion-brand, its parent, another.
func envRepo(t *testing.T) (dir, data string) {
	dir = example(t, "multistore")
	p := filepath.Join(dir, "slipway.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	y := addUnder(string(b), "us", "secrets: [STRIPE_KEY]")
	y = addUnder(y, "fashion-brand", "secrets: [BRAND_TOKEN]")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	// Short: a unix socket path has a length limit.
	data, err = os.MkdirTemp("", "slw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	return dir, data
}

func TestEnvSetListUnset(t *testing.T) {
	dir, data := envRepo(t)
	env := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmds(t, append([]string{"env", "-C", dir, "--state-dir", data}, args...)...)
	}
	// No server yet: a clear error, exit 1.
	if code, _, stderr := env("list", "--store-id", "us"); code != 1 || !strings.Contains(stderr, "slipway serve") {
		t.Errorf("without a server: %d %s", code, stderr)
	}
	serve(t, data)

	code, out, stderr := env("set", "API_URL=https://api.example.com/?a=b", "CURRENCY=GBP", "EMPTY=", "--store-id", "us", "--store-id", "eu")
	if code != 0 {
		t.Fatalf("set: %d %s", code, stderr)
	}
	if out != "us: set API_URL, CURRENCY, EMPTY\neu: set API_URL, CURRENCY, EMPTY\n" {
		t.Errorf("set output: %q", out)
	}
	for _, want := range []string{"us: CURRENCY overrides the value in slipway.yaml", "run `slipway deploy --store-id us --store-id eu --deploy-only` to apply"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("set stderr lacks %q: %s", want, stderr)
		}
	}

	code, out, stderr = env("list", "--store-id", "us")
	if code != 0 {
		t.Fatalf("list: %d %s", code, stderr)
	}
	want := `API_URL=https://api.example.com/?a=b
BRAND_TOKEN  # secret: read from the environment at deploy time, never stored
CURRENCY=GBP  # overrides slipway.yaml
EMPTY=
STRIPE_KEY  # secret: read from the environment at deploy time, never stored
`
	if out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}

	code, out, stderr = env("unset", "CURRENCY", "NEVER_SET", "--store-id", "us")
	if code != 0 || out != "us: unset CURRENCY\n" || !strings.Contains(stderr, "us: NEVER_SET was not set") || !strings.Contains(stderr, "--deploy-only` to apply") {
		t.Errorf("unset: %d %q %q", code, out, stderr)
	}
	code, out, _ = env("list", "--store-id", "us", "--json")
	var v envView
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("list --json: %d %s", code, out)
	}
	got := map[string]envViewEntry{}
	for _, e := range v.Env {
		got[e.Name] = e
	}
	if e := got["CURRENCY"]; e.Source != envSourceConfig || e.Value == nil || *e.Value != "USD" {
		t.Errorf("CURRENCY is the config's again: %+v", e)
	}
	if e := got["STRIPE_KEY"]; e.Source != envSourceSecret || e.Value != nil {
		t.Errorf("a secret has no value: %+v", e)
	}
	if e := got["EMPTY"]; e.Source != envSourceRuntime || e.Value == nil || *e.Value != "" {
		t.Errorf("EMPTY: %+v", e)
	}
	if !strings.Contains(out, `"name": "STRIPE_KEY",`) || strings.Contains(out, `"value": null`) {
		t.Errorf("json: %s", out)
	}
	// eu is untouched by the unset of us.
	if _, out, _ := env("list", "--store-id", "eu"); !strings.Contains(out, "CURRENCY=GBP  # overrides slipway.yaml\n") {
		t.Errorf("eu: %s", out)
	}
	// Unsetting only what is not set changes nothing and needs no deploy.
	if code, out, stderr := env("unset", "NEVER_SET", "--store-id", "us"); code != 0 || out != "" || strings.Contains(stderr, "to apply") {
		t.Errorf("unset of nothing: %d %q %q", code, out, stderr)
	}

	// That the runtime env reaches deploy requests is serve's business now: see server.TestPlanJobMergesEnvAndSecrets.
}

func TestEnvRefusals(t *testing.T) {
	dir, data := envRepo(t)
	serve(t, data)
	env := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmds(t, append([]string{"env", "-C", dir, "--state-dir", data}, args...)...)
	}
	cases := []struct {
		args []string
		err  string
	}{
		{[]string{"set", "STRIPE_KEY=sk_live_123", "--store-id", "us"}, "argument 1: STRIPE_KEY is a secret of store us (listed under stores.us.secrets in slipway.yaml): secret values are never stored in Slipway's state; set STRIPE_KEY or STRIPE_KEY_FILE in the environment of slipway deploy instead"},
		{[]string{"set", "A=1", "BRAND_TOKEN=t0k", "--store-id", "us"}, "argument 2: BRAND_TOKEN is a secret of store us (listed under stores.fashion-brand.secrets"},
		{[]string{"set", "A=1", "BAD-NAME=x", "--store-id", "us"}, `argument 2: "BAD-NAME" is not a valid env name`},
		{[]string{"set", "1A=x", "--store-id", "us"}, `argument 1: "1A" is not a valid env name`},
		{[]string{"set", "A=1", "NOEQUALS", "--store-id", "us"}, "argument 2 (NOEQUALS): expected KEY=VALUE"},
		{[]string{"set", "not a name", "--store-id", "us"}, "argument 1: expected KEY=VALUE"},
		{[]string{"set", "A=1", "A=2", "--store-id", "us"}, "argument 2: A is already set by argument 1"},
		{[]string{"set", "PORT=80", "--store-id", "us"}, "PORT is reserved"},
		{[]string{"set", "SLIPWAY_STORE_ID=x", "--store-id", "us"}, "SLIPWAY_STORE_ID is reserved"},
		{[]string{"set", "A=1"}, "--store-id ID"},
		{[]string{"set", "--store-id", "us"}, "requires at least 1 arg"},
		{[]string{"set", "A=1", "--store-id", "fashion-brand"}, "template store"},
		{[]string{"unset", "bad-name", "--store-id", "us"}, `argument 1: "bad-name" is not a valid env name`},
		{[]string{"list", "--store-id", "us", "--store-id", "eu"}, "takes one store"},
		{[]string{"bogus"}, "unknown command"},
	}
	for _, c := range cases {
		code, _, stderr := env(c.args...)
		if code != 2 || !strings.Contains(stderr, c.err) {
			t.Errorf("%v: exit %d, stderr %q (want %q)", c.args, code, stderr, c.err)
		}
		if strings.Contains(stderr, "sk_live_123") || strings.Contains(stderr, "t0k") {
			t.Errorf("%v: a secret value was echoed: %s", c.args, stderr)
		}
	}
	// Nothing was stored.
	if _, out, _ := env("list", "--store-id", "us"); strings.Contains(out, "=1") || strings.Contains(out, "sk_live") {
		t.Errorf("a refused set stored something:\n%s", out)
	}
	// A value stored before the name became a secret is flagged, never shown.
	c := server.NewClient(data)
	if _, err := c.ChangeEnv(context.Background(), "eu", server.EnvChange{Set: map[string]string{"STRIPE_KEY": "old-value"}}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(addUnder(string(b), "eu", "secrets: [STRIPE_KEY]")), 0o644)
	_, out, _ := env("list", "--store-id", "eu")
	if strings.Contains(out, "old-value") || !strings.Contains(out, "STRIPE_KEY  # secret") || !strings.Contains(out, "slipway env unset STRIPE_KEY --store-id eu") {
		t.Errorf("stale secret:\n%s", out)
	}
}
