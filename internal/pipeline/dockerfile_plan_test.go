package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/config"
)

func TestPlanDockerErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM b AS build\nRUN --mount=type=secret,id=NPM_TOKEN true\nFROM b AS runtime\n"), 0o644)
	cfg := &config.Config{File: "/repo/slipway.yaml"}
	for _, tc := range []struct {
		spec config.BuildSpec
		want string
	}{
		{config.BuildSpec{Dockerfile: "Dockerfile", Target: "prod", Secrets: []string{"NPM_TOKEN"}},
			`app web: build.target: stage "prod" is not in`},
		{config.BuildSpec{Dockerfile: "Dockerfile"},
			`Dockerfile:2: RUN mounts secret "NPM_TOKEN", which /repo/slipway.yaml: app web: build.secrets does not list`},
		{config.BuildSpec{Dockerfile: "docker/Dockerfile"},
			`app web: build.dockerfile: docker/Dockerfile is not in the composed app`},
	} {
		app := &config.App{ID: "web", Path: "apps/web", BuildSpec: tc.spec.AsDockerfile()}
		_, err := planDocker(cfg, dir, app)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.spec, err, tc.want)
		}
	}
	// No build key, a Dockerfile in the app: a Dockerfile build of it.
	d, err := planDocker(cfg, dir, &config.App{ID: "web", Path: "apps/web"})
	if err == nil || !strings.Contains(err.Error(), "(a Dockerfile in apps/web).secrets does not list") {
		t.Errorf("found Dockerfile: %v, %v", d, err)
	}
	// A build command wins over a Dockerfile found in the app.
	if d, err := planDocker(cfg, dir, &config.App{ID: "web", Build: "make"}); d != nil || err != nil {
		t.Errorf("build command: %v, %v", d, err)
	}

	u := &dockerUnit{field: "slipway.yaml: app web: build", spec: config.BuildSpec{Secrets: []string{"NPM_TOKEN"}}}
	_, err = dockerSecrets(u, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "build.secrets[0]: NPM_TOKEN is not set") {
		t.Errorf("missing secret: %v", err)
	}
	f := filepath.Join(dir, "tok")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	got, err := dockerSecrets(u, func(k string) string { return map[string]string{"NPM_TOKEN_FILE": f}[k] })
	if err != nil || string(got["NPM_TOKEN"]) != "s3cret" {
		t.Errorf("secret from file: %q, %v", got, err)
	}
}
