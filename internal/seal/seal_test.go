package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Seal([]byte("hunter2"), "env/us/PW")
	if !IsSealed(s) || strings.Contains(s, "hunter2") {
		t.Fatalf("sealed form %q", s)
	}
	if s2 := b.Seal([]byte("hunter2"), "env/us/PW"); s2 == s {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	got, err := b.Open(s, "env/us/PW")
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := b.Open(s, "env/eu/PW"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened for another context: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(s, "env/us/PW"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened with another key: %v", err)
	}
	tampered := s[:len(s)-2] + "AA"
	if _, err := b.Open(tampered, "env/us/PW"); !errors.Is(err, ErrOpen) {
		t.Errorf("opened a tampered value: %v", err)
	}
}

func TestLoadGeneratesPrivateKeyOnce(t *testing.T) {
	dir := t.TempDir()
	noenv := func(string) string { return "" }
	b1, err := Load(dir, noenv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi.Mode(), err)
	}
	s := b1.Seal([]byte("v"), "c")
	os.Chmod(path, 0o644)
	b2, err := Load(dir, noenv)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b2.Open(s, "c"); err != nil || string(got) != "v" {
		t.Fatalf("second load has another key: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a key file readable by others was left %v", fi.Mode())
	}
}

func TestLoadFromEnv(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{9}, KeySize)
	env := func(k string) string {
		if k == KeyEnv {
			return base64.StdEncoding.EncodeToString(key)
		}
		return ""
	}
	b, err := Load(dir, env)
	if err != nil || b.Source != KeyEnv {
		t.Fatalf("load: %v %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !os.IsNotExist(err) {
		t.Errorf("a key from the environment must not be written to disk: %v", err)
	}
	ref, _ := New(key)
	if got, err := ref.Open(b.Seal([]byte("x"), "c"), "c"); err != nil || string(got) != "x" {
		t.Errorf("env key not used: %v", err)
	}
	bad := func(k string) string { return "not-a-key" }
	if _, err := Load(dir, bad); err == nil || !strings.Contains(err.Error(), KeyEnv) || strings.Contains(err.Error(), "not-a-key") {
		t.Errorf("bad env key: %v (must name %s and not echo the value)", err, KeyEnv)
	}
}
