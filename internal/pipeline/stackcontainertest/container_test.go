package stackcontainertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// With SLIPWAY_BUILD_IN=container a Node app's build (package.json: the
// node stack) runs in a container of image.stacks.node (a Node image the test makes: no hub), the
// image gets that same base, and it runs under Docker.
func TestNodeStackBuildsInItsImage(t *testing.T) {
	if testenv.RequireDocker(t) == "" {
		return
	}
	reg := testenv.StartRegistry(t)
	node := testenv.NodeImage(t)
	if reg == nil || node == nil {
		return
	}
	nodeRef := reg.Repo("stacks/node:20")
	ref, err := name.ParseReference(nodeRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, node); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "shop")
	files := map[string]string{
		"slipway.yaml":         fmt.Sprintf("project: shop\nimage:\n  stacks: {node: %q}\napps:\n  - {path: apps/site, framework: f, build: node build.js}\nstores:\n  us: {projectName: shop, region: r, framework: f}\n", nodeRef),
		"apps/stores/us/.keep": "",
		// The test's Node image has node but no npm: the config's build
		// command runs (in the node stack's image, package.json named it).
		"apps/site/package.json": `{"name":"site"}`,
		"apps/site/build.js": `const fs = require('fs');
fs.writeFileSync('where.txt', (fs.existsSync('/.dockerenv') ? 'built in a container' : 'built on the host') + ' in ' + process.cwd());`,
		"apps/site/server.js": `const body = require('fs').readFileSync('where.txt', 'utf8');
require('http').createServer((q, s) => s.end(body + ' for ' + process.env.SLIPWAY_STORE_ID)).listen(+process.env.PORT, process.env.HOST);`,
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	store := pipeline.RemoteStore{Remote: registry.NewRemote(), Registry: reg.Addr}
	res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: []string{"us"}, Store: store,
		AllowNoGit: true, CacheDir: "-", BuildIn: pipeline.BuildInContainer})
	if err != nil {
		t.Fatal(err)
	}
	im := res.Images[0]
	if im.Err != nil {
		t.Fatalf("build: %v", im.Err)
	}
	if im.Base != nodeRef || im.MissingInterpreter != "" {
		t.Errorf("base %q (missing %q), want the stack image %s", im.Base, im.MissingInterpreter, nodeRef)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".out/us/site/where.txt")); string(b) != "built in a container in /workspace" {
		t.Fatalf("where.txt: %q", b)
	}

	// The image runs under Docker: node comes from the stack image.
	img := reg.Addr + "/shop/site@" + im.Digest
	testenv.Docker(t, "pull", img)
	port := testenv.FreePort(t)
	cname := fmt.Sprintf("slipway-test-stack-%d", port)
	args := []string{"run", "-d", "--name", cname, "-e", fmt.Sprintf("PORT=%d", port), "-e", "SLIPWAY_STORE_ID=us"}
	if testenv.DockerNetwork() == "host" {
		args = append(args, "--network", "host", "-e", "HOST=127.0.0.1")
	} else {
		args = append(args, "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, port))
	}
	testenv.Docker(t, append(args, img)...)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", cname).Run() })
	body := ""
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && body == ""; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
	}
	if !strings.HasPrefix(body, "built in a container") || !strings.HasSuffix(body, " for us") {
		logs, _ := exec.Command("docker", "logs", cname).CombinedOutput()
		t.Fatalf("container answered %q\nlogs: %s", body, logs)
	}
}
