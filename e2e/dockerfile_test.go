//go:build integration

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// newDockerfileProject is a git repository with one app built from a
// multi-stage Dockerfile (a secret mounted in the build stage, a build arg,
// a target) and two stores, each overriding the page it serves.
func newDockerfileProject(t *testing.T, base, canary string) *project {
	t.Helper()
	sum := sha256.Sum256([]byte(canary))
	dir := filepath.Join(t.TempDir(), "dockershop")
	files := map[string]string{
		"slipway.yaml": `project: dockershop
apps:
  - id: web
    path: apps/web
    framework: shop
    port: 8080
    build:
      target: runtime
      args: {GREETING: Hello from a Dockerfile}
      secrets: [NPM_TOKEN]
stores:
  a: {projectName: dockershop-a, region: local, framework: shop}
  b: {projectName: dockershop-b, region: local, framework: shop}
`,
		"apps/web/Dockerfile": "FROM " + base + " AS build\n" +
			"ARG GREETING\n" +
			"COPY page.txt /src/page.txt\n" +
			"RUN --mount=type=secret,id=NPM_TOKEN test \"$(sha256sum < /run/secrets/NPM_TOKEN)\" = \"" + hex.EncodeToString(sum[:]) + "  -\" && " +
			"mkdir -p /www && { echo \"<h1>$GREETING</h1>\"; cat /src/page.txt; } > /www/index.html\n" +
			"FROM build AS debug\n" +
			"RUN echo debug stage, never built\n" +
			"FROM " + base + " AS runtime\n" +
			"COPY --from=build /www /www\n" +
			"CMD [\"sh\", \"-c\", \"exec httpd -f -p ${PORT} -h /www\"]\n",
		"apps/web/page.txt":          "base page\n",
		"apps/web/.dockerignore":     "README.md\n",
		"apps/web/README.md":         "not in the context\n",
		"apps/stores/a/web/page.txt": "store A page\n",
		"apps/stores/b/web/page.txt": "store B page\n",
	}
	writeFiles(t, dir, files)
	return commitProject(t, dir, "dockerfile app")
}

// A multi-stage Dockerfile app deploys on the Docker driver and each store
// answers through the router with its own page; the build secret reaches
// the build step (the Dockerfile checks its hash) and no output; bad input
// fails naming the field and deploys nothing.
func TestDockerfileAppDeploys(t *testing.T) {
	base := testenv.EngineBusybox(t)
	if base == "" {
		return
	}
	const canary = "canary-e2e-5d1c-not-in-any-output"
	p := newDockerfileProject(t, base, canary)

	// Without the secret: refused before anything is built, naming the field.
	addr := freeAddr(t)
	out, stderr, code := p.run(2*time.Minute, nil, "up", "-C", p.dir, "--http", addr, "--driver", "docker")
	if code == 0 || !strings.Contains(out+stderr, "build.secrets[0]: NPM_TOKEN is not set") {
		t.Fatalf("up without NPM_TOKEN: exit %d, want an error naming build.secrets[0]:\n%s\n%s", code, out, stderr)
	}

	up := p.start([]string{"NPM_TOKEN=" + canary}, "up", "-C", p.dir, "--http", addr, "--driver", "docker")
	up.waitOutput(t, false, regexp.MustCompile(`serving on http://\S+`), 5*time.Minute)
	port := strings.Split(addr, ":")[1]
	for store, want := range map[string]string{"a": "store A page", "b": "store B page"} {
		code, body := get(t, "http://"+store+".localhost:"+port+"/")
		if code != http.StatusOK || !strings.Contains(body, want) || !strings.Contains(body, "<h1>Hello from a Dockerfile</h1>") {
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
}
