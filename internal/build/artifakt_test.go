package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Artifakt keeps its callbacks in .artifakt/: they run like .slipway's, and
// .slipway's win when both exist.
func TestArtifaktCallbacks(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"package.json":             `{"scripts":{"build":"exit 1"}}`,
		"server.js":                "s",
		ArtifaktCallbackFile:       `echo "artifakt build for $SLIPWAY_STORE_ID" > built.txt`,
		ArtifaktEntrypointCallback: "export FROM=artifakt",
	})
	if got := stepNames(t, dir, "make dist"); got != ArtifaktCallbackFile {
		t.Fatalf("steps: %q", got)
	}
	res := (&Runner{}).Run(context.Background(), []Task{{Store: "us", App: "web", Dir: dir}})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "built.txt")); string(b) != "artifakt build for us\n" {
		t.Errorf(".artifakt/build.sh did not run: %q", b)
	}
	p, err := Collect(dir, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p.Dir, EntrypointCallback)); string(b) != "export FROM=artifakt" {
		t.Errorf(".artifakt/entrypoint.sh not shipped as the entrypoint callback: %q", b)
	}
	if got := listDeploy(t, p.Dir); strings.Contains(got, ".artifakt") {
		t.Errorf(".artifakt shipped as an app file: %s", got)
	}

	writeFiles(t, dir, map[string]string{CallbackFile: "echo slipway", EntrypointCallback: "export FROM=slipway"})
	if got := stepNames(t, dir, ""); got != CallbackFile {
		t.Errorf("both: %q, want .slipway's", got)
	}
	p, err = Collect(dir, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p.Dir, EntrypointCallback)); string(b) != "export FROM=slipway" {
		t.Errorf("both: entrypoint %q, want .slipway's", b)
	}
}
