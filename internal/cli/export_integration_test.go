//go:build integration

package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestExportComposeServesTheLivePage deploys a store (the test app, in the
// embedded store, on the process runtime), exports it with `slipway export
// compose`, brings the file up with Debian's docker-compose, pulling from
// serve's read-only registry, and checks the containers serve what the live
// release serves through the router: same release, same env, the secret from
// the filled-in env_file.
func TestExportComposeServesTheLivePage(t *testing.T) {
	if testenv.RequireDocker(t) == "" || testenv.RequireCompose(t) == "" {
		return
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"apps/web/index.txt":   "web\n",
		"apps/stores/us/.keep": "",
		"slipway.yaml": fmt.Sprintf(`project: exp%d
apps:
  - id: web
    path: apps/web
    framework: next
    port: %d
    health: {path: /healthz}
stores:
  us:
    projectName: exp-us
    framework: next
    region: us-east-1
    env: {PRICE: "US$ 5"}
    secrets: [API_KEY]
`, port, port),
	})
	cfg, err := config.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, ".slipway")
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: data, HTTPAddr: "127.0.0.1:0", RegistryAddr: "127.0.0.1:0", Log: io.Discard, StopOnExit: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// One image that runs on this host (process runtime) and in a container.
	if runtime.GOOS != "linux" {
		t.Skip("the test app image must run both on the host and in a container")
	}
	marker := "export-" + cfg.Project
	img := testapp.Image(t, testapp.Options{Env: map[string]string{"TESTAPP_MARKER": marker}, Port: port})
	ref, _ := name.ParseReference(pipeline.LayoutHost + "/" + cfg.Project + "/web:c1")
	d, err := srv.Images.Publish(ctx, ref, img)
	if err != nil {
		t.Fatal(err)
	}
	secret := "sk_" + randHex(t)
	req, err := pipeline.NewDeployRequest(cfg, "us", []pipeline.BuiltImage{{Store: "us", App: "web", Ref: ref.String(), Digest: d.DigestStr(),
		DriverRef: "oci-layout:" + srv.Images.Dir() + "@" + d.DigestStr()}},
		pipeline.RequestOptions{Commit: "c1", Kind: "build-deploy", Getenv: func(k string) string {
			if k == "API_KEY" {
				return secret
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewClient(data).Deploy(ctx, req, nil); err != nil {
		t.Fatalf("deploy: %v", err)
	}
	live := func(path string) string {
		r, _ := http.NewRequest(http.MethodGet, "http://"+srv.HTTPAddr()+path, nil)
		r.Host = "us.localhost"
		return httpBody(t, r)
	}

	out := filepath.Join(dir, "export", "docker-compose.yml")
	os.MkdirAll(filepath.Dir(out), 0o755)
	if code, _, stderr := run(t, "export", "compose", "-C", dir, "--store-id", "us", "--image-registry", srv.RegistryAddr(), "-o", out); code != 0 {
		t.Fatalf("export compose: %d\n%s", code, stderr)
	}
	file, _ := os.ReadFile(out)
	if strings.Contains(string(file), secret) {
		t.Fatalf("the compose file holds the secret value:\n%s", file)
	}
	secrets := filepath.Join(filepath.Dir(out), "us.secrets.env")
	placeholder, err := os.ReadFile(secrets)
	if err != nil || !strings.Contains(string(placeholder), "API_KEY=\n") {
		t.Fatalf("secrets placeholder: %v %q", err, placeholder)
	}
	if err := os.WriteFile(secrets, []byte("API_KEY="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// serve's /v2/ listener wants a read token: log docker in with one.
	tok, err := server.NewClient(data).CreateToken(ctx, server.TokenRequest{Name: "compose", Scope: auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	testenv.DockerLogin(t, srv.RegistryAddr(), "compose", tok.Token)
	cdir, project := filepath.Dir(out), "slipwayexport"+randHex(t)
	testenv.Compose(t, cdir, "-f", out, "config", "-q")
	t.Cleanup(func() {
		c := testenv.Compose(t, cdir, "-p", project, "-f", out, "down", "-v", "--rmi", "all")
		_ = c
	})
	testenv.Compose(t, cdir, "-p", project, "-f", out, "up", "-d")

	exported := func(path string) string {
		r, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
		body, err := tryBody(r)
		if err != nil {
			t.Fatalf("GET %s from the compose service: %v\ndocker-compose ps:\n%s\nlogs:\n%s", path, err,
				testenv.Compose(t, cdir, "-p", project, "-f", out, "ps"), testenv.Compose(t, cdir, "-p", project, "-f", out, "logs", "--no-color"))
		}
		return body
	}
	for _, path := range []string{"/release", "/env?k=PRICE", "/env?k=API_KEY", "/env?k=SLIPWAY_RELEASE", "/env?k=TESTAPP_MARKER"} {
		want, got := live(path), exported(path)
		if got != want {
			t.Errorf("GET %s: compose %q, live release %q", path, got, want)
		}
	}
	if got := exported("/env?k=TESTAPP_MARKER"); got != marker {
		t.Errorf("the exported service runs another image: TESTAPP_MARKER = %q, want %q", got, marker)
	}
	// /data is the store's volume (the process runtime's is a host directory).
	if got := exported("/env?k=SLIPWAY_DATA_DIR"); got != "/data" {
		t.Errorf("SLIPWAY_DATA_DIR = %q, want /data", got)
	}
	if got := exported("/data"); got != "1" {
		t.Errorf("/data counter = %q, want 1 (a writable /data volume)", got)
	}
}

// httpBody GETs r (retrying while nothing answers, up to 30 s) and returns a 200 body.
func httpBody(t *testing.T, r *http.Request) string {
	t.Helper()
	b, err := tryBody(r)
	if err != nil {
		t.Fatalf("GET %s: %v", r.URL, err)
	}
	return b
}

func tryBody(r *http.Request) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.DefaultClient.Do(r)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b), nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func randHex(t *testing.T) string {
	return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
}
