package dockerbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "localhost": true, "[::1]:5000": true,
		"127.1.2.3": true, "index.docker.io": false, "10.0.0.1:5000": false, "registry.example:443": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// Only loopback registries lose TLS verification; none means no file.
func TestBuildahRegistriesConf(t *testing.T) {
	b := &Buildah{dir: t.TempDir()}
	if p, err := b.registriesConf([]string{"busybox", "registry.example/app:1"}); err != nil || p != "" {
		t.Fatalf("no loopback base: %q, %v; want no file", p, err)
	}
	p, err := b.registriesConf([]string{"127.0.0.1:5000/base:1", "registry.example/app:1", "127.0.0.1:5000/other"})
	if err != nil || p == "" {
		t.Fatal(p, err)
	}
	body, _ := os.ReadFile(p)
	if strings.Count(string(body), "[[registry]]") != 1 || !strings.Contains(string(body), `location = "127.0.0.1:5000"`) || strings.Contains(string(body), "registry.example") {
		t.Fatalf("registries.conf:\n%s", body)
	}
	if again, _ := b.registriesConf([]string{"127.0.0.1:5000/base:1"}); again != p {
		t.Errorf("the same registries gave another file: %s, %s", again, p)
	}
}

// CopyTo writes what the engine would get: no ignored file, modes and
// links kept, every mtime fixed.
func TestContextCopyTo(t *testing.T) {
	dir := t.TempDir()
	for p, body := range map[string]string{"Dockerfile": "FROM scratch\n", ".dockerignore": "secret.txt\nlogs/\n", "app/run.sh": "#!/bin/sh\n", "secret.txt": "no", "logs/a": "no"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644)
	}
	os.Chmod(filepath.Join(dir, "app/run.sh"), 0o755)
	os.Symlink("run.sh", filepath.Join(dir, "app/start"))
	c, err := NewContext(dir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "ctx")
	if err := c.CopyTo(dest); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"secret.txt", "logs"} {
		if _, err := os.Lstat(filepath.Join(dest, p)); err == nil {
			t.Errorf("%s was copied, though .dockerignore excludes it", p)
		}
	}
	st, err := os.Stat(filepath.Join(dest, "app/run.sh"))
	if err != nil || st.Mode().Perm() != 0o755 || !st.ModTime().Equal(contextTime) {
		t.Errorf("app/run.sh: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "app/start")); err != nil || l != "run.sh" {
		t.Errorf("app/start: link %q, %v", l, err)
	}
	if st, err := os.Stat(filepath.Join(dest, "app")); err != nil || !st.ModTime().Equal(contextTime) || st.Mode().Perm() != 0o755 {
		t.Errorf("app/: %v %v", st, err)
	}
	d1, _ := c.Digest()
	c2, _ := NewContext(dest, "Dockerfile")
	if d2, _ := c2.Digest(); d1 != d2 {
		t.Errorf("the copy's digest %s differs from the context's %s", d2, d1)
	}
}

// A secrets directory left by a killed build goes at the next build's
// writeSecrets; a live process's stays.
func TestWriteSecretsSweepsDeadBuilds(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(parent, fmt.Sprintf("%s%d-123", secretDirPrefix, dead.Process.Pid))
	live := filepath.Join(parent, fmt.Sprintf("%s%d-456", secretDirPrefix, os.Getppid()))
	for _, d := range []string{left, live} {
		os.MkdirAll(d, 0o700)
		os.WriteFile(filepath.Join(d, "NPM_TOKEN"), []byte("canary"), 0o600)
	}
	args, cleanup, err := writeSecrets(map[string][]byte{"NPM_TOKEN": []byte("s3cret")}, t.TempDir(), parent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the dead build's secrets are still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live process's secrets were removed: %v", err)
	}
	if len(args) != 2 || !strings.Contains(args[1], fmt.Sprintf("%s%d-", secretDirPrefix, os.Getpid())) {
		t.Errorf("secret args %v", args)
	}
	cleanup()
	if mine, _ := filepath.Glob(filepath.Join(parent, fmt.Sprintf("%s%d-*", secretDirPrefix, os.Getpid()))); len(mine) != 0 {
		t.Errorf("cleanup left %v", mine)
	}
}
