package source

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo is a bare repository with a clone that tests commit to and push from with the git CLI.
type gitRepo struct {
	t     *testing.T
	bare  string
	clone string
}

func run(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newGitRepo pushes a copy of examples/multistore to a new bare repository.
func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	g := &gitRepo{t: t, bare: filepath.Join(dir, "origin.git"), clone: filepath.Join(dir, "clone")}
	run(t, dir, "git", "init", "--quiet", "--bare", "-b", "main", g.bare)
	src, err := filepath.Abs("../../examples/multistore")
	if err != nil {
		t.Fatal(err)
	}
	run(t, dir, "cp", "-a", src, g.clone)
	run(t, g.clone, "git", "init", "--quiet", "-b", "main")
	run(t, g.clone, "git", "add", "-A")
	run(t, g.clone, "git", "commit", "--quiet", "-m", "initial")
	run(t, g.clone, "git", "remote", "add", "origin", g.bare)
	run(t, g.clone, "git", "push", "--quiet", "origin", "main")
	return g
}

// commit writes files (path → content) in the clone, commits them with msg and pushes to branch.
func (g *gitRepo) commit(branch, msg string, files map[string]string) string {
	g.t.Helper()
	for p, c := range files {
		full := filepath.Join(g.clone, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			g.t.Fatal(err)
		}
	}
	run(g.t, g.clone, "git", "add", "-A")
	run(g.t, g.clone, "git", "commit", "--quiet", "-m", msg)
	run(g.t, g.clone, "git", "push", "--quiet", "origin", "HEAD:refs/heads/"+branch)
	return run(g.t, g.clone, "git", "rev-parse", "HEAD")
}
