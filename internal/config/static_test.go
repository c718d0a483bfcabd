package config

import (
	"strings"
	"testing"
)

func TestStaticAppConfig(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `project: demo
apps:
  - id: web
    path: apps/web
    framework: next
  - id: docs
    path: apps/docs
    static: out/
    spa: true
stores:
  us:
    projectName: us
    region: r
    framework: next
`,
		"apps/web/index.js":  "x",
		"apps/docs/index.js": "x",
		"apps/stores/us/":    "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AppsFor("us") {
		if a.ID == "docs" && (a.Static != "out" || !a.SPA) {
			t.Errorf("docs: static %q spa %v", a.Static, a.SPA)
		}
	}
}

func TestStaticAppConfigErrorsNameTheLine(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `project: demo
apps:
  - id: web
    path: apps/web
    framework: next
  - id: docs
    path: apps/docs
    static: ../outside
  - id: blog
    path: apps/blog
    spa: true
  - id: shop
    path: apps/shop
    static: dist
    entrypoint: [node, server.js]
stores:
  us:
    projectName: us
    region: r
    framework: next
`,
		"apps/web/index.js":  "x",
		"apps/docs/index.js": "x",
		"apps/blog/index.js": "x",
		"apps/shop/index.js": "x",
		"apps/stores/us/":    "",
	})
	_, err := Load(root, "")
	ps := problemsOf(t, err)
	want := map[string]int{`static "../outside"`: 6, "spa is only for static sites": 9, "static and entrypoint both set": 12}
	for msg, line := range want {
		found := false
		for _, p := range ps {
			if strings.Contains(p.Message, msg) {
				found = true
				if p.Line != line || !strings.HasSuffix(p.File, "slipway.yaml") {
					t.Errorf("%q at %s:%d, want line %d", msg, p.File, p.Line, line)
				}
			}
		}
		if !found {
			t.Errorf("no problem %q in %v", msg, ps)
		}
	}
}
