package gitfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A tree read through the batch process is the tree ls-tree lists, and
// objects committed after the process started are found.
func TestOpenBatchMatchesLsTree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	ctx := context.Background()
	repo := t.TempDir()
	write := func(p, c string, mode os.FileMode) {
		full := filepath.Join(repo, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("a.txt", "a\n", 0o644)
	write("bin/run", "#!/bin/sh\n", 0o755)
	write("apps/x/y/z.json", "{}\n", 0o644)
	write("apps/x-y/w", "w\n", 0o644)
	write("apps/x.y", "dot\n", 0o644)
	os.Symlink("a.txt", filepath.Join(repo, "link"))
	gitCmd(t, repo, "init", "-q")
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "one")
	gitDir := filepath.Join(repo, ".git")
	b := NewBatch(gitDir, nil)
	defer b.Close()

	check := func(ref string) *Tree {
		t.Helper()
		want, err := OpenRepo(ctx, gitDir, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpenBatch(ctx, b, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got.Commit != want.Commit || !reflect.DeepEqual(got.entries, want.entries) || !reflect.DeepEqual(got.dirs, want.dirs) {
			t.Fatalf("%s through the batch:\n%v\n%v\nwant\n%v\n%v", ref, got.entries, got.dirs, want.entries, want.dirs)
		}
		return got
	}
	tr := check("HEAD")
	if b, err := fs.ReadFile(tr, "apps/x/y/z.json"); err != nil || string(b) != "{}\n" {
		t.Fatalf("read through the batch: %q %v", b, err)
	}

	// Committed after the process started (new loose objects, a moved ref).
	write("apps/x/y/z.json", "{\"v\":2}\n", 0o644)
	write("new/file", "n\n", 0o644)
	gitCmd(t, repo, "add", "-A")
	gitCmd(t, repo, "commit", "-q", "-m", "two")
	tr = check("HEAD")
	if b, err := fs.ReadFile(tr, "apps/x/y/z.json"); err != nil || string(b) != "{\"v\":2}\n" {
		t.Fatalf("new blob through the batch: %q %v", b, err)
	}
	// Packed, after a gc: still found.
	gitCmd(t, repo, "gc", "-q")
	check("HEAD~1")

	if _, err := OpenBatch(ctx, b, strings.Repeat("0", 40)); !errors.Is(err, ErrNoRef) {
		t.Fatalf("unknown commit: %v", err)
	}
	if _, err := b.Object(ctx, "HEAD\nHEAD"); err == nil {
		t.Fatal("a name with a newline was sent")
	}
	// A process that died is replaced.
	b.mu.Lock()
	b.cmd.Process.Kill()
	b.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	check("HEAD")
}
