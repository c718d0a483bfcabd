package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// stackRepo is a one-store repository (store us) with one app at apps/site
// made of files, committed.
func stackRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	files["slipway.yaml"] = files["slipway.yaml"] + "project: shop\napps:\n  - {path: apps/site, framework: site}\nstores:\n  us: {projectName: shop, region: r, framework: site}\n"
	files["apps/stores/us/.keep"] = ""
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, dir, "init", "-q")
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "v1")
	return dir
}

// deployStack builds and deploys the repo on the process runtime and
// returns what the router answers for us.localhost at path.
func deployStack(t *testing.T, files map[string]string, path string) (int, string) {
	t.Helper()
	dir := stackRepo(t, files)
	h := start(t, t.TempDir())
	h.buildDeploy(dir)
	return h.get("us.localhost", path)
}

// A Go module with no dependencies and no config is detected (go.mod),
// built into a static binary and started as that binary; the store store
// override reaches it.
func TestDetectedGoAppDeploys(t *testing.T) {
	testenv.Go(t)
	code, body := deployStack(t, map[string]string{
		"apps/site/go.mod": "module example.com/site\n\ngo 1.22\n",
		"apps/site/main.go": `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "go app for %s", os.Getenv("SLIPWAY_STORE_ID"))
	})
	http.ListenAndServe(os.Getenv("HOST")+":"+os.Getenv("PORT"), nil)
}
`}, "/")
	if code != 200 || body != "go app for us" {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

// A directory of files with an index.html and nothing to run is a static
// site the router serves.
func TestDetectedStaticSiteDeploys(t *testing.T) {
	dir := stackRepo(t, map[string]string{
		"apps/site/index.html":     "<h1>static home</h1>",
		"apps/site/css/site.css":   "h1{color:red}",
		"apps/site/about/index.md": "not html",
	})
	h := start(t, t.TempDir())
	h.buildDeploy(dir)
	if code, body := h.get("us.localhost", "/"); code != 200 || !strings.Contains(body, "static home") {
		t.Fatalf("GET /: %d %q", code, body)
	}
	if code, body := h.get("us.localhost", "/css/site.css"); code != 200 || body != "h1{color:red}" {
		t.Fatalf("GET /css/site.css: %d %q", code, body)
	}
}

// A Node app whose build writes dist/index.html and that has nothing to
// start is a static site of dist/.
func TestNodeBuildToStaticSiteDeploys(t *testing.T) {
	testenv.Node(t)
	code, body := deployStack(t, map[string]string{
		"apps/site/package.json": `{"name":"site","scripts":{"build":"node build.js"}}`,
		"apps/site/build.js":     `require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', '<p>built for ' + process.env.SLIPWAY_STORE_ID + '</p>');`,
	}, "/")
	if code != 200 || body != "<p>built for us</p>" {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

// A Python app with an empty requirements.txt and a vendored module starts
// by convention (python3 app.py) with PYTHONPATH naming pip's target.
func TestDetectedPythonAppDeploys(t *testing.T) {
	testenv.Python(t)
	code, body := deployStack(t, map[string]string{
		"apps/site/requirements.txt":     "# no packages: the greeting module is vendored\n",
		"apps/site/vendored/greet.py":    "def hello(store):\n    return 'python app for ' + store\n",
		"apps/site/vendored/__init__.py": "",
		"apps/site/app.py": `import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from vendored.greet import hello

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (hello(os.environ['SLIPWAY_STORE_ID']) + ' ' + os.environ.get('PYTHONPATH', '')).encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

HTTPServer((os.environ.get('HOST', '0.0.0.0'), int(os.environ['PORT'])), H).serve_forever()
`}, "/")
	if code != 200 || body != "python app for us .python_packages" {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

// A Ruby app with a Gemfile that names no gems (and its lockfile) is
// installed by bundler offline and started by convention (bundle exec ruby app.rb).
func TestDetectedRubyAppDeploys(t *testing.T) {
	testenv.Ruby(t)
	code, body := deployStack(t, map[string]string{
		"apps/site/Gemfile":      "source \"https://rubygems.org\"\n",
		"apps/site/Gemfile.lock": "GEM\n  remote: https://rubygems.org/\n  specs:\n\nPLATFORMS\n  ruby\n\nDEPENDENCIES\n",
		"apps/site/app.rb": `require "socket"
server = TCPServer.new(ENV.fetch("HOST", "0.0.0.0"), Integer(ENV.fetch("PORT")))
loop do
  c = server.accept
  while (l = c.gets) && l != "\r\n"; end
  body = "ruby app for #{ENV["SLIPWAY_STORE_ID"]} with #{defined?(Bundler) ? "bundler" : "no bundler"}"
  c.write "HTTP/1.1 200 OK\r\nContent-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
  c.close
end
`}, "/")
	if code != 200 || body != "ruby app for us with bundler" {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

// Artifakt's callbacks at deploy level: .artifakt/build.sh builds, and
// .artifakt/entrypoint.sh runs before the web process starts.
func TestArtifaktCallbacksDeploy(t *testing.T) {
	testenv.Node(t)
	bb := testenv.BusyboxImage(t) // the entrypoint script needs a shell in the base
	if bb == nil {
		return
	}
	bl, err := registry.OpenLayout(filepath.Join(t.TempDir(), "base"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bl.Publish(context.Background(), name.MustParseReference("slipway.local/base/busybox:1"), bb); err != nil {
		t.Fatal(err)
	}
	code, body := deployStack(t, map[string]string{
		"slipway.yaml":                      "image: {base: \"oci-layout:" + bl.Dir() + ":slipway.local/base/busybox:1\"}\n",
		"apps/site/package.json":            `{"name":"site","scripts":{"build":"exit 1"}}`,
		"apps/site/.artifakt/build.sh":      "echo \"built by artifakt for $SLIPWAY_STORE_ID\" > built.txt\n",
		"apps/site/.artifakt/entrypoint.sh": "echo \"entrypoint ran for $SLIPWAY_STORE_ID\" > \"${SLIPWAY_DATA_DIR:-/data}/entrypoint.txt\"\n",
		"apps/site/server.js": `const fs = require('fs'), built = fs.readFileSync('built.txt', 'utf8').trim();
const ran = () => fs.readFileSync((process.env.SLIPWAY_DATA_DIR || '/data') + '/entrypoint.txt', 'utf8').trim();
require('http').createServer((q, s) => s.end(built + ' / ' + ran())).listen(+process.env.PORT, process.env.HOST);`,
	}, "/")
	if code != 200 || body != "built by artifakt for us / entrypoint ran for us" {
		t.Fatalf("GET /: %d %q", code, body)
	}
}
