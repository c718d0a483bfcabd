package cli

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// Values given on argv are refused without being echoed; an env file names
// its bad line.
func TestSecretsSetRefusesArgvValues(t *testing.T) {
	dir := example(t, "multistore")
	code, out, stderr := run(t, "secrets", "set", "STRIPE_KEY=sk_argv_canary", "-C", dir, "--store-id", "us")
	if code != ExitUsage || strings.Contains(out+stderr, "sk_argv_canary") || !strings.Contains(stderr, "command line") {
		t.Errorf("NAME=VALUE on argv: exit %d, out %q, stderr %q", code, out, stderr)
	}
	f := filepath.Join(t.TempDir(), "s.env")
	os.WriteFile(f, []byte("# comment\nGOOD=1\nbad line sk_file_canary\n"), 0o600)
	code, out, stderr = run(t, "secrets", "set", "--env-file", f, "-C", dir, "--store-id", "us")
	if code != ExitUsage || strings.Contains(out+stderr, "sk_file_canary") || !strings.Contains(stderr, f+":3:") {
		t.Errorf("bad env file: exit %d, out %q, stderr %q", code, out, stderr)
	}
}

// A secret kept by serve reaches the deploy (its hook sees it, redacted in the
// output) with nothing in the deploy's environment; it is listed by name only,
// and no file under the state dir holds it. The state dir is private.
func TestSecretsStoredReachDeploys(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	dir := example(t, "multistore")
	cfgFile := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(cfgFile)
	os.WriteFile(cfgFile, []byte(addUnder(string(b), "us", "secrets: [STRIPE_KEY]")), 0o644)
	gitInit(t, dir)
	data := filepath.Join(dir, ".slipway")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "leftover.json"), []byte("{}"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
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

	const canary = "sk_stored_canary_4e1f0b"
	vf := filepath.Join(t.TempDir(), "v")
	os.WriteFile(vf, []byte(canary+"\n"), 0o600)
	if code, out, stderr := run(t, "secrets", "set", "STRIPE_KEY", "--from-file", vf, "-C", dir, "--store-id", "us"); code != 0 || out != "us: set STRIPE_KEY\n" {
		t.Fatalf("secrets set: %d %q %q", code, out, stderr)
	}
	code, out, _ := run(t, "secrets", "list", "-C", dir, "--store-id", "us")
	if code != 0 || !strings.Contains(out, "STRIPE_KEY") || strings.Contains(out, canary) {
		t.Errorf("secrets list: %d %q", code, out)
	}
	t.Setenv("STRIPE_KEY", "")
	t.Setenv("SLIPWAY_HOOK_AFTER_DEPLOY", `echo "hook sees:$STRIPE_KEY"`)
	code, out, stderr := run(t, "deploy", "-C", dir, "--store-id", "us")
	if code != 0 {
		t.Fatalf("deploy with the secret kept by serve: %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "hook sees:[REDACTED]") || strings.Contains(out+stderr, canary) {
		t.Errorf("the post-deploy hook must see the stored secret, redacted in output:\n%s", stderr)
	}
	checkPrivate(t, data)
	filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(canary)) {
			t.Errorf("%s holds the secret in clear", p)
		}
		return nil
	})

	if code, out, _ := run(t, "secrets", "unset", "STRIPE_KEY", "-C", dir, "--store-id", "us"); code != 0 || out != "us: unset STRIPE_KEY\n" {
		t.Errorf("secrets unset: %d %q", code, out)
	}
	if code, _, stderr := run(t, "deploy", "-C", dir, "--store-id", "us"); code != ExitUsage || !strings.Contains(stderr, "STRIPE_KEY") {
		t.Errorf("deploy after unset: %d, want a usage error naming the missing secret\n%s", code, stderr)
	}
}

// checkPrivate: the state dir and its subdirs are 0700, its files 0600.
func checkPrivate(t *testing.T, data string) {
	t.Helper()
	fi, err := os.Stat(data)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir %s: %v %v, want 0700", data, fi.Mode(), err)
	}
	ents, _ := os.ReadDir(data)
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(data, e.Name()))
		if err != nil || fi.Mode()&fs.ModeSocket != 0 {
			continue
		}
		want := fs.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", e.Name(), fi.Mode().Perm(), want)
		}
	}
}
