//go:build integration

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/dockerbuild"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// newBuildahProject is a multi-stage Dockerfile app (a secret mounted in
// the build stage, a build arg, a target) whose image serves its page from
// its WORKDIR, as the process runtime runs it (no chroot: the page is a
// path relative to the working directory), and two stores.
func newBuildahProject(t *testing.T, base, canary string) *project {
	t.Helper()
	sum := sha256.Sum256([]byte(canary))
	dir := filepath.Join(t.TempDir(), "buildahshop")
	files := map[string]string{
		"slipway.yaml": `project: buildahshop
apps:
  - id: web
    path: apps/web
    framework: shop
    port: 8080
    build:
      target: runtime
      args: {GREETING: Hello from buildah}
      secrets: [NPM_TOKEN]
stores:
  a: {projectName: buildahshop-a, region: local, framework: shop}
  b: {projectName: buildahshop-b, region: local, framework: shop}
`,
		"apps/web/Dockerfile": "FROM " + base + " AS build\n" +
			"ARG GREETING\n" +
			"COPY page.txt /src/page.txt\n" +
			"RUN --mount=type=secret,id=NPM_TOKEN test \"$(sha256sum < /run/secrets/NPM_TOKEN)\" = \"" + hex.EncodeToString(sum[:]) + "  -\" && " +
			"mkdir -p /www && { echo \"<h1>$GREETING</h1>\"; cat /src/page.txt; } > /www/index.html\n" +
			"FROM " + base + " AS runtime\n" +
			"COPY --from=build /www /www\n" +
			"WORKDIR /www\n" +
			"CMD [\"sh\", \"-c\", \"exec httpd -f -p ${PORT} -h .\"]\n",
		"apps/web/page.txt":          "base page\n",
		"apps/stores/a/web/page.txt": "store A page\n",
		"apps/stores/b/web/page.txt": "store B page\n",
	}
	writeFiles(t, dir, files)
	return commitProject(t, dir, "dockerfile app")
}

// With no Docker engine (DOCKER_HOST is a dead socket), `slipway up`
// builds the multi-stage Dockerfile app with buildah, its base pulled from
// a loopback registry, and deploys it on the process runtime: each store
// answers through the router with its own page; the secret is in no output.
func TestDockerfileAppBuiltWithBuildahDeploys(t *testing.T) {
	bin := testenv.Buildah(t)
	reg := testenv.StartRegistry(t)
	base := testenv.RegistryBusybox(t, reg)
	if bin == "" || base == "" {
		return
	}
	const canary = "canary-e2e-buildah-77c2-not-in-any-output"
	p := newBuildahProject(t, base, canary)
	t.Cleanup(func() { // before the temp dir goes: buildah's layers are removable through it only
		if b, err := dockerbuild.NewBuildah(bin, filepath.Join(p.data, "cache", "buildah")); err == nil {
			b.RemoveStorage(context.Background())
		}
	})
	addr := freeAddr(t)
	dead := "DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "no-engine.sock")
	up := p.start([]string{dead, "NPM_TOKEN=" + canary}, "up", "-C", p.dir, "--http", addr, "--verbose")
	up.waitOutput(t, false, regexp.MustCompile(`serving on http://\S+`), 3*time.Minute)
	out := up.stdout.String() + up.stderr.String()
	if !strings.Contains(out, "building Dockerfile with buildah") {
		t.Errorf("slipway up did not build with buildah:\n%s", out)
	}
	port := strings.Split(addr, ":")[1]
	for store, want := range map[string]string{"a": "store A page", "b": "store B page"} {
		code, body := get(t, "http://"+store+".localhost:"+port+"/")
		if code != http.StatusOK || !strings.Contains(body, want) || !strings.Contains(body, "<h1>Hello from buildah</h1>") {
			t.Errorf("%s: GET / = %d %q, want 200 with %q and the build arg's greeting", store, code, body, want)
		}
	}
	up.cmd.Process.Signal(os.Interrupt)
	if code := up.wait(t, 60*time.Second); code != 0 {
		t.Errorf("slipway up exited %d after SIGINT\nstderr:\n%s", code, up.stderr)
	}
	if strings.Contains(up.stdout.String()+up.stderr.String(), canary) {
		t.Errorf("the secret's value is in slipway's output")
	}
	if _, err := os.Stat(filepath.Join(p.data, "cache", "buildah", "storage")); err != nil {
		t.Errorf("buildah's storage is not under the state dir: %v", err)
	}
}
