package config

import "testing"

func TestHealthDefaultIsLenientUnlessConfigured(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `apps:
  - {path: apps/web, framework: next}
  - {path: apps/api, health: {path: /healthz}}
  - {path: apps/worker, health: {interval: 2s}}
stores:
  us: {projectName: us, region: r, framework: next}
`,
		"apps/web/package.json": "{}", "apps/api/package.json": "{}", "apps/worker/package.json": "{}",
		"apps/stores/us/": "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]Health{
		"web":    {Path: "/", Default: true},
		"api":    {Path: "/healthz"},
		"worker": {Path: "/", Default: true},
	} {
		h := cfg.App(id).Health
		if h.Path != want.Path || h.Default != want.Default {
			t.Errorf("%s: %+v", id, h)
		}
	}
}
