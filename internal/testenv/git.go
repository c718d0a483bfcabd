package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// GitRepo is a bare repository in a temp dir and a clone that a test commits
// to and pushes from with the git CLI, as a developer would.
type GitRepo struct {
	t testing.TB
	// Bare is the bare repository (what serve is given as --repo).
	Bare string
	// Clone is the work tree pushed from.
	Clone string
}

// Git runs git (or another command) in dir with a clean config and fails the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewGitRepo pushes a copy of the repository's examples/multistore to a new
// bare repository (branch main). Skips (or fails under SLIPWAY_REQUIRE_DOCKER=1) without git.
func NewGitRepo(t testing.TB) *GitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		unavailable(t, "git is not installed")
		return nil
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "..", "examples", "multistore")
	dir := t.TempDir()
	g := &GitRepo{t: t, Bare: filepath.Join(dir, "origin.git"), Clone: filepath.Join(dir, "clone")}
	Git(t, dir, "init", "--quiet", "--bare", "-b", "main", g.Bare)
	Git(t, dir, "init", "--quiet", "-b", "main", g.Clone)
	// Only what git tracks in the example: never a local .out or node_modules.
	files := Git(t, src, "ls-files", "-z", "--cached", "--others", "--exclude-standard", ".")
	for _, p := range strings.Split(files, "\x00") {
		if p == "" {
			continue
		}
		st, err := os.Lstat(filepath.Join(src, p))
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		g.write(p, string(b), st.Mode().Perm())
	}
	Git(t, g.Clone, "add", "-A")
	Git(t, g.Clone, "commit", "--quiet", "-m", "initial")
	Git(t, g.Clone, "remote", "add", "origin", g.Bare)
	Git(t, g.Clone, "push", "--quiet", "origin", "main")
	return g
}

func (g *GitRepo) write(p, content string, mode os.FileMode) {
	full := filepath.Join(g.Clone, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		g.t.Fatal(err)
	}
}

// Commit writes files (slash path → content) in the clone, commits them with
// msg, pushes HEAD to branch and returns the commit id.
func (g *GitRepo) Commit(branch, msg string, files map[string]string) string {
	g.t.Helper()
	for p, c := range files {
		g.write(p, c, 0o644)
	}
	Git(g.t, g.Clone, "add", "-A")
	Git(g.t, g.Clone, "commit", "--quiet", "-m", msg)
	Git(g.t, g.Clone, "push", "--quiet", "origin", "HEAD:refs/heads/"+branch)
	return Git(g.t, g.Clone, "rev-parse", "HEAD")
}
