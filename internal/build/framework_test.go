package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// Next traces from a workspace root above the app when one has a lockfile:
// server.js is then nested, and static and public must land beside it.
func TestCollectNextNestedStandalone(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".next/standalone/node_modules/next/i.js":        "n",
		".next/standalone/apps/web/server.js":            "s",
		".next/standalone/apps/web/.next/server/app.js":  "a",
		".next/standalone/apps/web/node_modules/x/i.js":  "x",
		".next/standalone/apps/web/other/server.js":      "not this one",
		".next/standalone/apps/web/other/.next/BUILD_ID": "b",
		".next/static/chunk.js":                          "c",
		"public/logo.svg":                                "l",
	})
	p, err := Collect(dir, Selection{Framework: "next"})
	if err != nil {
		t.Fatal(err)
	}
	got := listDeploy(t, p.Dir)
	for _, want := range []string{"apps/web/.next/static/chunk.js", "apps/web/public/logo.svg", "node_modules/next/i.js", ".slipway/start/next-server.cjs"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in %s", want, got)
		}
	}
	shim, _ := os.ReadFile(filepath.Join(p.Dir, ShimDir, "next-server.cjs"))
	if !strings.Contains(string(shim), "require('../../apps/web/server.js')") {
		t.Errorf("shim: %s", shim)
	}
}

func TestNextWithoutStandaloneNamesTheLine(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"next.config.mjs": "/** @type {import('next').NextConfig} */\nconst nextConfig = {\n  reactStrictMode: true,\n};\nexport default nextConfig;\n",
		".next/BUILD_ID":  "x",
	})
	_, err := Collect(dir, Selection{Framework: "next", SourceDir: "apps/web"})
	if err == nil || !strings.Contains(err.Error(), "apps/web/next.config.mjs:2") || !strings.Contains(err.Error(), "output: 'standalone'") {
		t.Fatalf("error: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, DeployDir)); err == nil {
		t.Errorf(".deploy written for a build that cannot start")
	}
	none := t.TempDir()
	_, err = Collect(none, Selection{Framework: "next", SourceDir: "apps/web"})
	if err == nil || !strings.Contains(err.Error(), "create apps/web/next.config.js") {
		t.Fatalf("no config: %v", err)
	}
	writeFiles(t, none, map[string]string{"next.config.js": "module.exports = {\n  images: {},\n}\n"})
	_, err = Collect(none, Selection{Framework: "next"})
	if err == nil || !strings.Contains(err.Error(), "next.config.js:1") {
		t.Fatalf("module.exports: %v", err)
	}
}

// The shims must start the real servers on the runtime's address: run them
// with node against tiny stand-ins that print what they were given.
func TestShimsSetListenEnv(t *testing.T) {
	node := testenv.Node(t)
	if node == "" {
		return
	}
	next := t.TempDir()
	writeFiles(t, next, map[string]string{".next/standalone/server.js": "console.log(process.env.HOSTNAME + ' ' + process.env.PORT)"})
	p, err := Collect(next, Selection{Framework: "next"})
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, argv []string, env ...string) string {
		cmd := exec.Command(node, argv[1:]...)
		cmd.Dir, cmd.Env = dir, append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run(p.Dir, p.Entrypoint, "PORT=4100", "HOST=127.0.0.1", "HOSTNAME=somehost"); got != "127.0.0.1 4100" {
		t.Errorf("next on the process runtime: %q", got)
	}
	if got := run(p.Dir, p.Entrypoint, "PORT=3000", "HOSTNAME=0123abcd"); got != "0.0.0.0 3000" {
		t.Errorf("next in a container: %q", got)
	}
	nuxt := t.TempDir()
	writeFiles(t, nuxt, map[string]string{".output/server/index.mjs": "console.log([process.env.NITRO_HOST, process.env.NITRO_PORT, process.env.HOST, process.env.PORT].join(' '))"})
	p, err = Collect(nuxt, Selection{Framework: "nuxt"})
	if err != nil {
		t.Fatal(err)
	}
	if got := run(p.Dir, p.Entrypoint, "PORT=4100", "HOST=127.0.0.1", "NITRO_PORT=9999"); got != "127.0.0.1 4100 127.0.0.1 4100" {
		t.Errorf("nuxt: %q", got)
	}
}
