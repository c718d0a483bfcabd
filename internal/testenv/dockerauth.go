package testenv

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// DockerLogin points DOCKER_CONFIG (for the rest of the test) at a fresh
// config that holds user:password for registry, as `docker login` writes
// it, so that docker and docker-compose pull from a registry that needs a
// login without touching the user's own config.
func DockerLogin(t *testing.T, registry, user, password string) {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{registry: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}
