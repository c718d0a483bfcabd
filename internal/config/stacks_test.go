package config

import (
	"errors"
	"strings"
	"testing"
)

func TestStackImages(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `image:
  stacks: {python: "registry.example.com/base/python:3.12"}
apps:
  - {path: apps/web, framework: f, image: {stacks: {python: "py:app"}}}
  - {path: apps/api, framework: f}
stores:
  us: {projectName: us, region: r, framework: f}
`,
		"apps/web/requirements.txt": "", "apps/api/go.mod": "", "apps/stores/us/": "",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ app, stack, want string }{
		{"web", "python", "py:app"},
		{"api", "python", "registry.example.com/base/python:3.12"},
		{"api", "go", "golang:1.24"},
		{"api", "static", ""},
	} {
		if got := cfg.StackImage(cfg.App(c.app), c.stack); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.app, c.stack, got, c.want)
		}
	}
}

func TestStackImagesRejected(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `image:
  stacks: {pyhton: "python:3"}
apps:
  - {path: apps/web, framework: f, image: {stacks: {ruby: "Not A Ref!"}}}
stores:
  us: {projectName: us, region: r, framework: f}
`,
		"apps/web/Gemfile": "", "apps/stores/us/": "",
	})
	_, err := Load(root, "")
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`slipway.yaml:2:3: error: image.stacks.pyhton: unknown stack "pyhton"`, `did you mean "python"`,
		`slipway.yaml:4:`, `apps[0].image.stacks.ruby: "Not A Ref!" is not an image reference`} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}
