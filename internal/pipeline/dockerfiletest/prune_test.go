//go:build integration

package dockerfiletest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// pruneProject is the test's own project: other tests build on the
// same engine at the same time in CI, and their builds would be counted.
const pruneProject = "dockerprune"

// engineBuilds lists the engine's images of the test app's store a, by ID.
func engineBuilds(t *testing.T) []string {
	t.Helper()
	out := testenv.Docker(t, "image", "ls", "-q", "--no-trunc",
		"--filter", "label=dev.slipway.project="+pruneProject, "--filter", "label=dev.slipway.store=a", "--filter", "label=dev.slipway.app=web")
	return strings.Fields(out)
}

// A new build of a store/app removes the engine's earlier, untagged builds
// of it, but not one that someone tagged, nor another app's.
func TestEngineBuildRemovesEarlierBuildImages(t *testing.T) {
	base := testenv.EngineBusybox(t)
	reg := testenv.StartRegistry(t)
	if base == "" || reg == nil {
		return
	}
	t.Setenv("NPM_TOKEN", dockerCanary)
	t.Setenv(pipeline.BuilderEnv, "docker")
	dir := dockerfileRepo(t, base)
	cfgPath := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(b, []byte("project: dockerfiletest"), []byte("project: "+pruneProject), 1), 0o644)
	git(t, dir, "commit", "-qam", "own project")
	t.Cleanup(func() {
		for _, id := range engineBuilds(t) {
			testenv.Docker(t, "image", "rm", "-f", id)
		}
	})
	store := pipeline.RemoteStore{Remote: registry.NewRemote(), Registry: reg.Addr}
	edit := func(page string) {
		t.Helper()
		os.WriteFile(filepath.Join(dir, "apps/stores/a/web/page.txt"), []byte(page+"\n"), 0o644)
		git(t, dir, "commit", "-qam", page)
	}
	runBuild(t, dir, store)
	first := engineBuilds(t)
	if len(first) != 1 {
		t.Fatalf("after one build the engine has %d images of a/web, want 1: %v", len(first), first)
	}
	// Someone tags the first build: it is theirs now, and stays.
	testenv.Docker(t, "tag", first[0], "someone/kept:1")
	t.Cleanup(func() { exec.Command("docker", "-H", testenv.DockerHost(), "image", "rm", "someone/kept:1").Run() })
	edit("second page")
	runBuild(t, dir, store)
	edit("third page")
	runBuild(t, dir, store)
	got := engineBuilds(t)
	if len(got) != 2 || !containsID(got, first[0]) {
		t.Fatalf("after three builds the engine has %v, want the tagged first build %s and the last one", got, first[0])
	}
	// Untagged, the first goes with the next build; only the last stays.
	testenv.Docker(t, "image", "rm", "someone/kept:1")
	edit("fourth page")
	runBuild(t, dir, store)
	if got := engineBuilds(t); len(got) != 1 || containsID(got, first[0]) {
		t.Fatalf("after four builds the engine has %v, want only the last", got)
	}
}

func containsID(ids []string, id string) bool {
	for _, i := range ids {
		if i == id {
			return true
		}
	}
	return false
}
