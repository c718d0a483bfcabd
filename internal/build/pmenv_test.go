package build

import (
	"os"
	"path/filepath"
	"testing"
)

// npm warns on every install about a store-dir it does not know, so pnpm's
// store is pointed under the cache only for an app with a pnpm lockfile;
// a download cache the environment chose is left alone.
func TestPMEnvSetsPnpmStoreOnlyForPnpmApps(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	npmApp, pnpmApp := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(pnpmApp, "pnpm-lock.yaml"), []byte("lockfileVersion: '9.0'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := c.pmEnv(nil, npmApp)
	if _, ok := env["npm_config_store_dir"]; ok {
		t.Errorf("an npm app gets npm_config_store_dir: %v", env)
	}
	if env["npm_config_cache"] != filepath.Join(c.Dir, "pm", "npm") {
		t.Errorf("npm's cache: %v", env)
	}
	if env := c.pmEnv(nil, pnpmApp); env["npm_config_store_dir"] != filepath.Join(c.Dir, "pm", "pnpm") {
		t.Errorf("a pnpm app's store: %v", env)
	}
	if env := c.pmEnv([]string{"NPM_CONFIG_CACHE=/elsewhere"}, npmApp); env["npm_config_cache"] != "" {
		t.Errorf("a cache the environment chose was overridden: %v", env)
	}
}
