// Package testapp builds images of the conformance suite's test app
// (./cmd/testapp, see its doc for the endpoints and hook commands).
//
// The binary is compiled once per GOOS with CGO_ENABLED=0 and cached on disk
// by a hash of its source and the Go version, so test processes after the
// first do not relink it. Images are built daemonlessly with image.Build and
// are reproducible: the same source and toolchain give the same digest.
package testapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/image"
)

// WorkDir is where the binary lives in the image, and the image's working directory.
const WorkDir = "/app"

// Path is the binary's path in the image; Entrypoint is [Path].
const Path = WorkDir + "/testapp"

// DefaultPort is the port the image declares (ExposedPort) unless Options.Port says otherwise.
const DefaultPort = 3000

// Options says how to build an image of the test app.
type Options struct {
	// GOOS the binary is built for; default "linux". The process runtime
	// runs it on the host, so its harness passes runtime.GOOS.
	GOOS string
	// Base is the image to build on; nil means scratch. Pass
	// testenv.BusyboxImage(t) when a test needs /bin/sh inside the image.
	Base v1.Image
	// Env is the image's environment, e.g. TESTAPP_MARKER to tell releases apart.
	Env map[string]string
	// Port is the declared port; default DefaultPort.
	Port int
}

// Image builds an image of the test app: the binary at Path, Entrypoint
// [Path], WorkingDir WorkDir, and o's env and port. It fails t on error.
func Image(t testing.TB, o Options) v1.Image {
	t.Helper()
	goos := o.GOOS
	if goos == "" {
		goos = "linux"
	}
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	dir := DeployDir(t, goos)
	img, err := image.Build(context.Background(), image.Spec{
		Base:        o.Base,
		Dir:         dir,
		WorkDir:     WorkDir,
		Entrypoint:  []string{Path},
		Env:         o.Env,
		ExposedPort: port,
		Platform:    &v1.Platform{OS: goos, Architecture: runtime.GOARCH},
	})
	if err != nil {
		t.Fatalf("building the testapp image: %v", err)
	}
	return img
}

// DeployDir returns a directory holding only the test app binary, named
// "testapp", for goos/GOARCH: a .deploy directory for image.Build. The
// directory is a shared cache: do not modify it.
func DeployDir(t testing.TB, goos string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(goos, &build{})
	b := v.(*build)
	b.once.Do(func() { b.dir, b.err = compile(goos) })
	if b.err != nil {
		t.Fatalf("compiling the testapp for %s: %v", goos, b.err)
	}
	return b.dir
}

// Binary returns the path of the test app binary for goos/GOARCH.
func Binary(t testing.TB, goos string) string {
	t.Helper()
	return filepath.Join(DeployDir(t, goos), "testapp")
}

type build struct {
	once sync.Once
	dir  string
	err  error
}

var builds sync.Map // GOOS -> *build

// sourceDir is this package's directory, where cmd/testapp lives.
func sourceDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(file)
}

// compile builds cmd/testapp into <tmp>/slipway-testapp-<uid>/<key>/deploy,
// reusing an earlier build with the same key.
func compile(goos string) (string, error) {
	src := sourceDir()
	main, err := os.ReadFile(filepath.Join(src, "cmd", "testapp", "main.go"))
	if err != nil {
		return "", fmt.Errorf("finding the testapp source: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", runtime.Version(), goos, runtime.GOARCH)
	h.Write(main)
	key := hex.EncodeToString(h.Sum(nil))[:24]

	cache := filepath.Join(os.TempDir(), "slipway-testapp-"+strconv.Itoa(os.Getuid()))
	dir := filepath.Join(cache, key, "deploy")
	bin := filepath.Join(dir, "testapp")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build to a temporary name and rename, so concurrent test processes
	// never see a half-written binary.
	tmp := filepath.Join(cache, key, fmt.Sprintf(".testapp-%d", os.Getpid()))
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", tmp, "./cmd/testapp")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return dir, nil
}
