//go:build integration

package dockerbuild

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-dev/slipway/internal/testenv"
)

const canary = "canary-7f3a9c1e-do-not-leak"

func canarySum() string {
	h := sha256.Sum256([]byte(canary))
	return hex.EncodeToString(h[:])
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// secretApp is a two-stage app on base whose build stage checks the canary
// secret mount's hash and whose context ignores a file holding the canary.
func secretApp(base string) map[string]string {
	return map[string]string{
		"Dockerfile": "FROM " + base + " AS build\n" +
			"ARG GREETING=hi\n" +
			"COPY app.txt /src/app.txt\n" +
			"RUN --mount=type=secret,id=NPM_TOKEN test \"$(sha256sum < /run/secrets/NPM_TOKEN)\" = \"" + canarySum() + "  -\" && " +
			"echo \"$GREETING $(wc -c < /run/secrets/NPM_TOKEN)\" > /src/out.txt\n" +
			"FROM " + base + "\n" +
			"COPY --from=build /src /app\n" +
			"CMD [\"cat\", \"/app/out.txt\"]\n",
		"app.txt":       "hello\n",
		"ignored.txt":   canary,
		".dockerignore": "ignored.txt\n",
	}
}

// TestEngineBuildSecretNotInImage builds a two-stage Dockerfile whose first
// stage reads a secret mount; the secret's value is in no layer, nor the
// config (history included) of the exported image.
func TestEngineBuildSecretNotInImage(t *testing.T) {
	base := testenv.EngineBusybox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeFiles(t, dir, secretApp(base))
	bc, err := NewContext(dir, "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(bc.Files(), " "), "ignored.txt") {
		t.Fatalf("context files %v include the ignored file", bc.Files())
	}
	e, err := Dial(ctx, testenv.DockerHost())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out []string
	id, err := e.Build(ctx, Request{Context: bc, Args: map[string]string{"GREETING": "hello"},
		Secrets: map[string][]byte{"NPM_TOKEN": []byte(canary)}, Tag: "slipway-test/dockerbuild:secret",
		Labels: map[string]string{"dev.slipway.test": "1"}, Line: func(s string) { out = append(out, s) }})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, strings.Join(out, "\n"))
	}
	img, remove, err := e.Export(ctx, id, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte(canary)) {
		t.Fatalf("image config has the secret: %s", cfg)
	}
	if !bytes.Contains(cfg, []byte("dev.slipway.test")) {
		t.Fatalf("image config lacks the label: %s", cfg)
	}
	var rd bytes.Buffer
	r := mutate.Extract(img)
	defer r.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rd.Reset()
		io.Copy(&rd, tr)
		if bytes.Contains(rd.Bytes(), []byte(canary)) || strings.Contains(h.Name, canary) {
			t.Fatalf("%s in the image holds the secret", h.Name)
		}
		if h.Name == "app/out.txt" && strings.TrimSpace(rd.String()) != "hello 27" {
			t.Fatalf("app/out.txt = %q", rd.String())
		}
	}
	for _, l := range out {
		if strings.Contains(l, canary) {
			t.Fatalf("build output has the secret: %q", l)
		}
	}
	t.Logf("build output:\n%s", strings.Join(out, "\n"))
}
