package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// With neither builder, or a bad choice, the error says what to do.
func TestPickDockerfileBuilderErrors(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-engine.sock"))
	t.Setenv("SLIPWAY_BUILDAH", filepath.Join(t.TempDir(), "no-buildah"))
	ctx := context.Background()
	for _, tc := range []struct{ env, want, wantErr string }{
		{"", "", "needs a Docker engine (DOCKER_HOST, else /var/run/docker.sock) or buildah"},
		{"kaniko", "", `SLIPWAY_DOCKERFILE_BUILDER="kaniko": write docker or buildah`},
		{"", "buildah", "slipway.yaml: app web: build.builder is buildah, and buildah is not installed (apt-get install buildah)"},
		{"buildah", "", "SLIPWAY_DOCKERFILE_BUILDER is buildah, and buildah is not installed"},
		{"", "docker", "build.builder is docker, and no Docker engine answers"},
	} {
		t.Setenv(BuilderEnv, tc.env)
		_, err := newBuilders(t.TempDir()).pick(ctx, "slipway.yaml: app web: build", tc.want)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("env %q, builder %q: error %v, want %q", tc.env, tc.want, err, tc.wantErr)
		}
	}
}
