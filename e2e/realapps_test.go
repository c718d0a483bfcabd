//go:build integration

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// realStores are testdata/realapps' stores and the header each one's override shows.
var realStores = map[string]string{
	"next-us": "Next store US", "next-eu": "Next store EU",
	"nuxt-de": "Nuxt store DE", "nuxt-fr": "Nuxt store FR",
}

// newRealProject copies testdata/realapps (real Next.js 15 and Nuxt 3 apps,
// Alokai's layout, alokai.config.json unchanged) into a fresh git repository.
func newRealProject(t *testing.T) *project {
	t.Helper()
	testenv.Node(t)
	testenv.NPM(t)
	dir := filepath.Join(t.TempDir(), "realapps")
	src := filepath.Join(repoRoot, "testdata", "realapps")
	if err := copyTree(src, dir); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	for _, junk := range []string{"apps/storefront-unified-nuxt/.nuxt"} {
		os.RemoveAll(filepath.Join(dir, junk))
	}
	return commitProject(t, dir, "real apps")
}

// realEnv keeps npm's cache where CI keeps it between runs (~/.npm), so a
// run downloads only what changed in the lockfiles.
func realEnv(extra ...string) []string {
	home, _ := os.UserHomeDir()
	out := []string{"npm_config_cache=" + filepath.Join(home, ".npm"), "npm_config_update_notifier=false", "NEXT_TELEMETRY_DISABLED=1", "NUXT_TELEMETRY_DISABLED=1"}
	return append(out, extra...)
}

// upAndCheck runs `slipway up`, checks every store's own page and assets
// through the router, and stops it with Ctrl-C.
func upAndCheck(t *testing.T, p *project, extraEnv []string, args ...string) {
	t.Helper()
	addr := freeAddr(t)
	up := p.start(realEnv(extraEnv...), append([]string{"up", "-C", p.dir, "--http", addr}, args...)...)
	up.waitOutput(t, false, regexp.MustCompile(`serving on http://\S+`), 15*time.Minute)
	t.Logf("slipway up %v served in %s", args, time.Since(up.started).Round(time.Second))
	for store, header := range realStores {
		base := "http://" + store + ".localhost:" + strings.Split(addr, ":")[1]
		code, body := get(t, base+"/")
		if code != http.StatusOK || !strings.Contains(body, header) {
			t.Errorf("%s: GET / = %d, want 200 with %q:\n%.600s", store, code, header, body)
			continue
		}
		for _, other := range realStores {
			if other != header && strings.Contains(body, other) {
				t.Errorf("%s shows another store's header %q", store, other)
			}
		}
		// public/ is served, and so are the framework's built assets.
		if code, _ := get(t, base+"/logo.svg"); code != http.StatusOK {
			t.Errorf("%s: GET /logo.svg = %d", store, code)
		}
		asset := regexp.MustCompile(`(?:src|href)="(/(?:_next/static|_nuxt)/[^"]+\.(?:js|css))"`).FindStringSubmatch(body)
		if asset == nil {
			t.Errorf("%s: no built asset referenced in the page:\n%.600s", store, body)
		} else if code, _ := get(t, base+asset[1]); code != http.StatusOK {
			t.Errorf("%s: GET %s = %d", store, asset[1], code)
		}
		// The release says what the health gate checked (no health configured).
		_, raw := p.releases(store)
		if !strings.Contains(raw, "GET / answers below 500") {
			t.Errorf("%s: the release does not say what the health gate checked:\n%.2000s", store, raw)
		}
	}
	up.cmd.Process.Signal(os.Interrupt)
	if code := up.wait(t, 60*time.Second); code != 0 {
		t.Errorf("slipway up exited %d after SIGINT\nstderr:\n%s", code, up.stderr)
	}
}

// Real Next.js 15 and Nuxt 3 apps deploy with zero config edits: on the
// process runtime with the default (scratch) base and the host's node; on
// Docker, whose scratch images cannot start, a deploy fails first with a
// hint, then works on a Node base image (built here: no hub is reachable).
func TestRealFrameworks(t *testing.T) {
	p := newRealProject(t)
	upAndCheck(t, p, nil)

	testenv.RequireDocker(t)
	addr := freeAddr(t)
	out, stderr, code := p.run(3*time.Minute, realEnv(), "up", "-C", p.dir, "--http", addr, "--driver", "docker")
	if code == 0 || !strings.Contains(stderr+out, "image.base") || !strings.Contains(stderr+out, "Node.js image") {
		t.Fatalf("docker with a scratch base: exit %d, want a failure naming image.base:\n%s\n%s", code, out, stderr)
	}

	base := filepath.Join(t.TempDir(), "node-base")
	lp, err := layout.Write(base, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(testenv.NodeImage(t), layout.WithAnnotations(map[string]string{image.RefNameAnnotation: "node"})); err != nil {
		t.Fatal(err)
	}
	upAndCheck(t, p, []string{"SLIPWAY_IMAGE_BASE=oci-layout:" + base + ":node"}, "--driver", "docker")
}
