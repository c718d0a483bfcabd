package dockerbuild

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const multiStage = `FROM base/builder:1 AS build
RUN --mount=type=secret,id=NPM_TOKEN \
    echo build
RUN --mount=type=secret,target=/run/secrets/OTHER echo other
FROM build AS test
FROM base/runtime:1 AS runtime
COPY --from=build /a /a
`

func TestParseDockerfile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": multiStage})
	df, err := ParseDockerfile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(df.Stages, []string{"build", "test", "runtime"}) || !slices.Equal(df.Bases, []string{"base/builder:1", "base/runtime:1"}) {
		t.Errorf("stages %v, bases %v", df.Stages, df.Bases)
	}
	if len(df.SecretMounts) != 2 || df.SecretMounts[0] != (SecretMount{"NPM_TOKEN", 2}) || df.SecretMounts[1] != (SecretMount{"OTHER", 4}) {
		t.Errorf("secret mounts %+v", df.SecretMounts)
	}
	if err := df.CheckTarget("build.target", "Runtime"); err != nil {
		t.Error(err)
	}
	err = df.CheckTarget("build.target", "prod")
	if err == nil || !strings.Contains(err.Error(), `build.target: stage "prod" is not in`) || !strings.Contains(err.Error(), "build, test, runtime") {
		t.Errorf("bad target: %v", err)
	}
	err = df.CheckSecrets("build.secrets", []string{"NPM_TOKEN"})
	if err == nil || !strings.Contains(err.Error(), `Dockerfile:4: RUN mounts secret "OTHER", which build.secrets does not list`) {
		t.Errorf("unlisted secret: %v", err)
	}
	if err := df.CheckSecrets("build.secrets", []string{"OTHER", "NPM_TOKEN"}); err != nil {
		t.Error(err)
	}
	write(t, dir, map[string]string{"Bad": "RUN echo\n"})
	if _, err := ParseDockerfile(filepath.Join(dir, "Bad")); err == nil || !strings.Contains(err.Error(), "Bad") {
		t.Errorf("no FROM: %v", err)
	}
}

func TestContextHonoursDockerignore(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"Dockerfile": "FROM scratch\n", ".dockerignore": "node_modules\n*.log\n!keep.log\nDockerfile\n",
		"src/a.js": "a", "node_modules/x/index.js": "x", "debug.log": "", "keep.log": "",
	})
	c, err := NewContext(dir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".dockerignore", "Dockerfile", "keep.log", "src", "src/a.js"}
	if !slices.Equal(c.Files(), want) {
		t.Errorf("files %v, want %v", c.Files(), want)
	}
	d1, err := c.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// Only contents count: a touched file keeps the digest, an edit changes it.
	os.Chtimes(filepath.Join(dir, "src/a.js"), contextTime.AddDate(3, 0, 0), contextTime.AddDate(3, 0, 0))
	write(t, dir, map[string]string{"node_modules/y.js": "ignored"})
	c2, _ := NewContext(dir, "Dockerfile")
	if d2, _ := c2.Digest(); d2 != d1 {
		t.Errorf("digest changed with an mtime and an ignored file")
	}
	write(t, dir, map[string]string{"src/a.js": "b"})
	if d3, _ := c2.Digest(); d3 == d1 {
		t.Errorf("digest unchanged after an edit")
	}
}

func TestDigestCacheReusesUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "a.txt": "aaaa", "b.txt": "bbbb"})
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"Dockerfile", "a.txt", "b.txt"} {
		os.Chtimes(filepath.Join(dir, f), old, old)
	}
	cache := filepath.Join(t.TempDir(), "ctx.json")
	c, _ := NewContext(dir, "Dockerfile")
	d0, _ := c.Digest()
	d1, err := c.DigestCached(cache)
	if err != nil || d1 != d0 {
		t.Fatalf("cached digest %s (%v), uncached %s", d1, err, d0)
	}
	if b, _ := os.ReadFile(cache); !strings.Contains(string(b), `"a.txt"`) {
		t.Fatalf("cache holds %s", b)
	}
	if d2, _ := c.DigestCached(cache); d2 != d1 {
		t.Errorf("digest from the cache %s, want %s", d2, d1)
	}
	write(t, dir, map[string]string{"a.txt": "AAAA"}) // same size, new mtime
	if d3, _ := c.DigestCached(cache); d3 == d1 {
		t.Errorf("an edited file kept the digest")
	}
}
