package testenv

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// recorder stands in for *testing.T to observe Skip/Fatal without ending the
// test; the helpers return right after calling them.
type recorder struct {
	testing.TB
	skipped, fatal string
}

func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("listening on the free port: %v", err)
	}
	l.Close()
	// Never the same port twice in one binary, and below the ephemeral range.
	seen := map[int]bool{p: true}
	for range 300 {
		q := FreePort(t)
		if seen[q] {
			t.Fatalf("FreePort returned %d twice", q)
		}
		if q >= ephemeralStart() {
			t.Errorf("FreePort = %d, in the ephemeral range from %d", q, ephemeralStart())
		}
		seen[q] = true
	}
}

// fakeEngine serves Docker's /_ping on a unix socket.
func fakeEngine(t *testing.T) string {
	dir, err := os.MkdirTemp("", "tenv") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "OK")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestRequireDocker(t *testing.T) {
	sock := fakeEngine(t)
	missing := filepath.Join(filepath.Dir(sock), "missing.sock")

	t.Run("answers", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+sock)
		t.Setenv(RequireEnv, "1")
		rec := &recorder{TB: t}
		if got := RequireDocker(rec); got != "unix://"+sock || rec.skipped != "" || rec.fatal != "" {
			t.Fatalf("RequireDocker = %q (skip %q, fatal %q)", got, rec.skipped, rec.fatal)
		}
	})
	t.Run("missing skips", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+missing)
		t.Setenv(RequireEnv, "")
		rec := &recorder{TB: t}
		if got := RequireDocker(rec); got != "" || rec.skipped == "" || rec.fatal != "" {
			t.Fatalf("RequireDocker = %q (skip %q, fatal %q)", got, rec.skipped, rec.fatal)
		}
		if !strings.Contains(rec.skipped, missing) {
			t.Errorf("skip reason %q does not name the socket", rec.skipped)
		}
	})
	t.Run("missing fails when required", func(t *testing.T) {
		t.Setenv("DOCKER_HOST", "unix://"+missing)
		t.Setenv(RequireEnv, "1")
		rec := &recorder{TB: t}
		if got := RequireDocker(rec); got != "" || rec.fatal == "" || rec.skipped != "" {
			t.Fatalf("RequireDocker = %q (skip %q, fatal %q)", got, rec.skipped, rec.fatal)
		}
	})
}

func TestDockerNetworkFromEnvFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "docker.env")
	if err := os.WriteFile(f, []byte("# comment\nSLIPWAY_DOCKER_NETWORK=host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvFileEnv, f)
	t.Setenv("SLIPWAY_DOCKER_NETWORK", "")
	if got := DockerNetwork(); got != "host" {
		t.Errorf("DockerNetwork from file = %q, want host", got)
	}
	t.Setenv("SLIPWAY_DOCKER_NETWORK", "bridge")
	if got := DockerNetwork(); got != "bridge" {
		t.Errorf("DockerNetwork from env = %q, want bridge", got)
	}
	t.Setenv("SLIPWAY_DOCKER_NETWORK", "")
	t.Setenv(EnvFileEnv, filepath.Join(t.TempDir(), "none"))
	if got := DockerNetwork(); got != "bridge" {
		t.Errorf("DockerNetwork default = %q, want bridge", got)
	}
}

func TestBusyboxPathIsStatic(t *testing.T) {
	p := BusyboxPath(t)
	if err := checkStatic(p); err != nil {
		t.Fatal(err)
	}
	// A dynamically linked program must be refused.
	if err := checkStatic("/bin/sh"); err == nil {
		t.Errorf("checkStatic(/bin/sh) = nil, want an error for a dynamic binary")
	}
}

func TestBusyboxImage(t *testing.T) {
	img := BusyboxImage(t)
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	d1, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// Built again from scratch: same digest.
	again, err := buildBusyboxImage(BusyboxPath(t))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := again.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("digest not reproducible: %s then %s", d1, d2)
	}
	t.Logf("busybox image %s (from %s)", d1, BusyboxPath(t))

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || len(cf.Config.Env) != 1 || cf.Config.Env[0] != "PATH=/bin" {
		t.Errorf("config: os %q env %q", cf.OS, cf.Config.Env)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		names = append(names, h.Name)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("layer entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	if h := got["bin/busybox"]; h == nil || h.Mode != 0o755 || h.Typeflag != tar.TypeReg {
		t.Errorf("bin/busybox: %+v", h)
	}
	for _, a := range []string{"sh", "env", "cat", "sleep", "wget"} {
		if h := got["bin/"+a]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v", a, h)
		}
	}
	if h := got["tmp/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("tmp/: %+v", h)
	}
}

func TestRegistryPushPull(t *testing.T) {
	reg := StartRegistry(t)
	img := BusyboxImage(t)
	ref, err := name.ParseReference(reg.Repo("testenv/busybox:latest"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing to %s: %v", ref, err)
	}
	pulled, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	want, _ := img.Digest()
	got, err := pulled.Digest()
	if err != nil || got != want {
		t.Fatalf("pulled digest %s (%v), pushed %s", got, err, want)
	}
	// Deletes are enabled.
	dref, _ := name.NewDigest(reg.Repo("testenv/busybox@" + want.String()))
	if err := remote.Delete(dref, remote.WithContext(ctx)); err != nil {
		t.Fatalf("deleting %s: %v", dref, err)
	}
	if _, err := os.Stat(reg.Dir); err != nil {
		t.Errorf("storage dir: %v", err)
	}
}

func TestRegistryHtpasswd(t *testing.T) {
	reg := StartRegistry(t, WithHtpasswd("ci", "s3cret"))
	if reg.User != "ci" || reg.Password != "s3cret" {
		t.Fatalf("credentials not recorded: %+v", reg)
	}

	resp, err := http.Get(reg.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET /v2/ = %s, want 401", resp.Status)
	}

	img := BusyboxImage(t)
	ref, _ := name.ParseReference(reg.Repo("testenv/private:1"))

	err = remote.Write(ref, img)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous push: got %v, want a 401 transport error", err)
	}
	bad := remote.WithAuth(&authn.Basic{Username: "ci", Password: "wrong"})
	if err := remote.Write(ref, img, bad); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	if err := remote.Write(ref, img, remote.WithAuth(reg.Authenticator())); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	if _, err := remote.Head(ref); err == nil {
		t.Fatal("anonymous HEAD of a manifest succeeded")
	}
	if _, err := remote.Head(ref, remote.WithAuth(reg.Authenticator())); err != nil {
		t.Fatalf("authenticated HEAD: %v", err)
	}
}

func TestBusyboxImageDockerLoad(t *testing.T) {
	RequireDocker(t)
	tag := loadBusybox(t)

	if out := Docker(t, "run", "--rm", "--network", "host", tag, "/bin/sh", "-c", "echo ok"); out != "ok" {
		t.Fatalf("docker run printed %q, want ok", out)
	}
	// PATH=/bin and the applet links work; /tmp is writable by nobody.
	out := Docker(t, "run", "--rm", "--network", "host", "--user", "65534:65534", tag,
		"sh", "-c", "echo hi >/tmp/x && cat /tmp/x && whoami")
	if out != "hi\nnobody" {
		t.Fatalf("docker run as nobody printed %q", out)
	}
}

func TestPublishedPort(t *testing.T) {
	RequireDocker(t)
	if DockerNetwork() != "bridge" {
		t.Skip("SLIPWAY_DOCKER_NETWORK=host: published ports don't work on this machine")
	}
	tag := loadBusybox(t)

	port := FreePort(t)
	id := Docker(t, "run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), tag,
		"sh", "-c", "mkdir -p /www && echo published >/www/index.html && exec httpd -f -p 8080 -h /www")
	t.Cleanup(func() { Docker(t, "rm", "-f", id) })

	var body string
	for i := 0; i < 50; i++ {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = strings.TrimSpace(string(b))
			if body == "published" {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET published port %d: last body %q; container logs:\n%s", port, body, Docker(t, "logs", id))
}

// loadBusybox writes BusyboxImage with tarball.Write, `docker load`s it under
// a tag named for the test and its digest, and removes the tag afterwards.
func loadBusybox(t *testing.T) string {
	t.Helper()
	img := BusyboxImage(t)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("slipway-testenv/busybox:" + strings.ToLower(t.Name()) + "-" + d.Hex[:12])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.Write(tag, img, f); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	Docker(t, "load", "-i", path)
	t.Cleanup(func() { Docker(t, "rmi", tag.String()) })
	return tag.String()
}
