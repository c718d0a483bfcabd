package gitfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	c.Env = append(os.Environ(), "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z", "GIT_AUTHOR_DATE=2024-01-02T03:04:05Z")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
}

func TestDescribeAndTag(t *testing.T) {
	ctx := context.Background()
	repo := t.TempDir()
	mono := filepath.Join(repo, "mono")
	os.MkdirAll(mono, 0o755)
	os.WriteFile(filepath.Join(mono, "a"), []byte("a"), 0o644)
	gitCmd(t, repo, "init", "-q")
	gitCmd(t, repo, "remote", "add", "origin", "https://user:s3cret@example.com/acme/shop.git")
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "x")
	r, err := Describe(ctx, mono)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dirty || len(r.Commit) != 40 || r.Time.Year() != 2024 || r.Source != "https://example.com/acme/shop.git" {
		t.Fatalf("clean: %+v", r)
	}
	if tag, _ := r.Tag(false); tag != r.Commit {
		t.Errorf("tag %q", tag)
	}
	// Changes outside the monorepo directory do not make it dirty.
	os.WriteFile(filepath.Join(repo, "outside"), []byte("x"), 0o644)
	if r, _ := Describe(ctx, mono); r.Dirty {
		t.Errorf("outside change made it dirty")
	}
	os.WriteFile(filepath.Join(mono, "b"), []byte("b"), 0o644)
	r, _ = Describe(ctx, mono)
	if !r.Dirty {
		t.Fatal("untracked file not dirty")
	}
	if _, err := r.Tag(false); !errors.Is(err, ErrDirty) || !strings.Contains(err.Error(), "--allow-dirty") {
		t.Errorf("dirty refused: %v", err)
	}
	tag, _ := r.Tag(true)
	os.WriteFile(filepath.Join(mono, "b"), []byte("b2"), 0o644)
	r2, _ := Describe(ctx, mono)
	tag2, _ := r2.Tag(true)
	if !strings.HasPrefix(tag, r.Commit+"-dirty-") || tag == tag2 {
		t.Errorf("dirty tags %q %q", tag, tag2)
	}
}
