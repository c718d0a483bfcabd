package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/seal"
)

func testBox(t *testing.T) *seal.Box {
	t.Helper()
	b, err := seal.New(bytes.Repeat([]byte{1}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// diskHas reports whether any file of the database (main, WAL, SHM) holds s.
func diskHas(t *testing.T, d *DB, s string) bool {
	t.Helper()
	files, _ := filepath.Glob(d.Path() + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func TestSecretsAndEnvAreSealedOnDisk(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	canary, envCanary, specCanary := "canary-secret-7f3a9", "canary-env-51c2e", "canary-spec-90ad1"
	if err := d.SetSecrets(ctx, "us", map[string]*string{"API_KEY": &canary}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetEnv(ctx, "us", map[string]*string{"FLAG": &envCanary}); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveSpec(ctx, "inst1", "us", []byte(`{"env":{"X":"`+specCanary+`"}}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{canary, envCanary, specCanary} {
		if diskHas(t, d, c) {
			t.Errorf("%s is in clear in the state files", c)
		}
	}
	sec, err := d.Secrets(ctx, "us")
	if err != nil || sec["API_KEY"] != canary {
		t.Errorf("secrets: %v %v", sec, err)
	}
	names, err := d.SecretNames(ctx, "us")
	if err != nil || len(names) != 1 || names[0].Name != "API_KEY" {
		t.Errorf("names: %v %v", names, err)
	}
	specs, err := d.Specs(ctx)
	if err != nil || !strings.Contains(string(specs["inst1"]), specCanary) {
		t.Errorf("specs: %v %v", specs, err)
	}
	d.DeleteSpecs(ctx, "inst1")
	if specs, _ := d.Specs(ctx); len(specs) != 0 {
		t.Errorf("spec not deleted: %v", specs)
	}
	if err := d.SetSecrets(ctx, "us", map[string]*string{"API_KEY": nil}); err != nil {
		t.Fatal(err)
	}
	if sec, _ := d.Secrets(ctx, "us"); len(sec) != 0 {
		t.Errorf("unset secret still there: %v", sec)
	}
}

// Env rows an older Slipway wrote in clear are sealed when a key is first used;
// another key is refused at once; without a key nothing sealed is written.
func TestSealMigrationAndWrongKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	v := "x"
	if err := d.SetEnv(ctx, "us", map[string]*string{"A": &v}); !errors.Is(err, ErrNoKey) {
		t.Fatalf("SetEnv without a key: %v, want ErrNoKey", err)
	}
	const legacy = "legacy-plaintext-3e8d"
	if _, err := d.db.Exec("INSERT INTO store_env (store, key, value, updated_at) VALUES ('us', 'OLD', ?, 0)", legacy); err != nil {
		t.Fatal(err)
	}
	if err := d.UseSealer(ctx, testBox(t)); err != nil {
		t.Fatal(err)
	}
	var raw string
	d.db.QueryRow("SELECT value FROM store_env WHERE key='OLD'").Scan(&raw)
	if !seal.IsSealed(raw) || strings.Contains(raw, legacy) {
		t.Errorf("legacy row not sealed: %q", raw)
	}
	if env, err := d.Env(ctx, "us"); err != nil || env["OLD"] != legacy {
		t.Errorf("env after migration: %v %v", env, err)
	}
	if diskHas(t, d, legacy) {
		t.Errorf("the legacy plaintext is still in the state files after sealing")
	}
	d.Close()
	d2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	other, _ := seal.New(bytes.Repeat([]byte{2}, seal.KeySize))
	if err := d2.UseSealer(ctx, other); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("another key: %v, want a refusal naming the master key", err)
	}
}
