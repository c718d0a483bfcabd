package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceSection(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"apps/storefront-unified-nextjs/package.json": "{}",
		"slipway.yaml": "project: shop\nsource:\n  repo: https://git.example.test/shop.git\n  githubSecretFile: secrets/github\n",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Source
	if s.Repo != "https://git.example.test/shop.git" || s.Branch != "main" || s.GitHubSecretFile != filepath.Join(root, "secrets/github") {
		t.Fatalf("source = %+v", s)
	}

	for _, c := range []struct{ yaml, want string }{
		{"source:\n  branch: main\n", "slipway.yaml:3:3: error: source: no repo given"},
		{"source:\n  repo: https://u:tok@git.example.test/r.git\n", "slipway.yaml:3:3: error: source.repo: the URL holds a password"},
		{"source:\n  repo: /srv/r.git\n  branch: -x\n", "slipway.yaml:3:3: error: source.branch: \"-x\" is not a branch name"},
		{"source:\n  repo: /srv/r.git\n  tokenFile: a\n  keyFile: b\n", "source: give tokenFile or keyFile, not both"},
		{"source:\n  repo: /srv/r.git\n  secret: x\n", "slipway.yaml:4:3: error: unknown key \"source.secret\""},
	} {
		write(t, root, map[string]string{"slipway.yaml": "project: shop\n" + c.yaml})
		_, err := Load(root, "")
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}
