package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each stack is detected from its file, in order, with the steps it runs.
func TestDetectStacks(t *testing.T) {
	for _, c := range []struct {
		name           string
		files          map[string]string
		stack, matched string
		pm, lock       string
		steps          string
	}{
		{"npm", map[string]string{"package.json": `{"scripts":{"build":"x"}}`, "package-lock.json": "{}"}, StackNode, "package.json", "npm", "package-lock.json",
			"npm ci --include=dev --no-audit --no-fund && npm run build"},
		{"pnpm", map[string]string{"package.json": `{}`, "pnpm-lock.yaml": ""}, StackNode, "package.json", "pnpm", "pnpm-lock.yaml", "pnpm install --frozen-lockfile"},
		{"yarn", map[string]string{"package.json": `{"scripts":{"build":"x"}}`, "yarn.lock": ""}, StackNode, "package.json", "yarn", "yarn.lock",
			"yarn install --frozen-lockfile && yarn run build"},
		{"python requirements", map[string]string{"requirements.txt": "flask==3.0\n", "pyproject.toml": ""}, StackPython, "requirements.txt", "pip", "",
			"python3 -m pip install --no-cache-dir --disable-pip-version-check --target .python_packages -r requirements.txt"},
		{"python empty requirements", map[string]string{"requirements.txt": "# none\n\n"}, StackPython, "requirements.txt", "pip", "", ""},
		{"pyproject", map[string]string{"pyproject.toml": "[project]\nname='x'\n"}, StackPython, "pyproject.toml", "pip", "",
			"python3 -m pip install --no-cache-dir --disable-pip-version-check --target .python_packages ."},
		{"ruby", map[string]string{"Gemfile": "", "Gemfile.lock": ""}, StackRuby, "Gemfile", "bundler", "Gemfile.lock", "bundle install"},
		{"ruby vendored", map[string]string{"Gemfile": "", "vendor/cache/x.gem": ""}, StackRuby, "Gemfile", "bundler", "", "bundle install --local"},
		{"go", map[string]string{"go.mod": "module x\n", "main.go": ""}, StackGo, "go.mod", "go modules", "",
			"go build -trimpath -buildvcs=false -o .gobin/app ."},
		{"go deps, cmd/", map[string]string{"go.mod": "module x\n", "go.sum": "", "cmd/srv/main.go": ""}, StackGo, "go.mod", "go modules", "go.sum",
			"go mod download && go build -trimpath -buildvcs=false -o .gobin/app ./cmd/srv"},
		{"static", map[string]string{"public/index.html": ""}, StackStatic, "public/index.html", "", "", ""},
		{"node wins over python", map[string]string{"package.json": `{}`, "requirements.txt": "x"}, StackNode, "package.json", "npm", "", ""},
		{"nothing", map[string]string{"README": ""}, "", "", "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			d, err := Detect(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			if d.Stack != c.stack || d.Matched != c.matched || d.PackageManager != c.pm || d.Lockfile != c.lock {
				t.Errorf("got stack %q matched %q pm %q lock %q: %+v", d.Stack, d.Matched, d.PackageManager, d.Lockfile, d)
			}
			if got := stepNames(t, dir, ""); got != c.steps {
				t.Errorf("steps %q, want %q", got, c.steps)
			}
			if d.Why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// Each stack's start convention, in its order of preference.
func TestStartConventions(t *testing.T) {
	for _, c := range []struct {
		name  string
		stack string
		files map[string]string
		want  string
	}{
		{"node main", StackNode, map[string]string{"package.json": `{"main":"srv.js","scripts":{"start":"x"}}`, "server.js": ""}, "node srv.js"},
		{"node server.js", StackNode, map[string]string{"package.json": `{}`, "server.js": "", "index.js": ""}, "node server.js"},
		{"node start script", StackNode, map[string]string{"package.json": `{"scripts":{"start":"x"}}`, "yarn.lock": ""}, "yarn start"},
		{"node none", StackNode, map[string]string{"package.json": `{}`}, ""},
		{"python gunicorn", StackPython, map[string]string{"requirements.txt": "Gunicorn==22\n", "app.py": ""},
			"/bin/sh -c exec python3 -m gunicorn --bind ${HOST:-0.0.0.0}:${PORT} app:app"},
		{"python gunicorn wsgi", StackPython, map[string]string{"pyproject.toml": "dependencies = [\"gunicorn\"]", "wsgi.py": "", "app.py": ""},
			"/bin/sh -c exec python3 -m gunicorn --bind ${HOST:-0.0.0.0}:${PORT} wsgi:app"},
		{"python app.py", StackPython, map[string]string{"requirements.txt": "flask\n", "app.py": "", "main.py": ""}, "python3 app.py"},
		{"python main.py", StackPython, map[string]string{"requirements.txt": "", "main.py": ""}, "python3 main.py"},
		{"ruby puma", StackRuby, map[string]string{"Gemfile": "", "Gemfile.lock": "GEM\n  specs:\n    puma (6.4.0)\n", "config.ru": ""},
			"/bin/sh -c exec bundle exec puma -b tcp://${HOST:-0.0.0.0}:${PORT} config.ru"},
		{"ruby rackup", StackRuby, map[string]string{"Gemfile": "", "config.ru": ""}, "/bin/sh -c exec bundle exec rackup -o ${HOST:-0.0.0.0} -p ${PORT} config.ru"},
		{"ruby app.rb", StackRuby, map[string]string{"Gemfile": "", "app.rb": ""}, "bundle exec ruby app.rb"},
		{"go binary", StackGo, map[string]string{"go.mod": "", GoBinary: "elf"}, "./" + GoBinary},
		{"go unbuilt", StackGo, map[string]string{"go.mod": ""}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			st := StartConvention(dir, c.stack)
			if got := strings.Join(st.Command, " "); got != c.want {
				t.Errorf("start %q, want %q (%s)", got, c.want, st.Why)
			}
			if st.Why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// A detected static site ships the directory holding index.html as the
// image's top and runs nothing; a start command in the config or Procfile
// keeps the app a plain one.
func TestCollectStaticSite(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"package.json": `{}`, "dist/index.html": "<p>", "dist/a/b.css": "x", "src/app.ts": "y",
		ArtifaktEntrypointCallback: "echo never"})
	p, err := Collect(dir, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Preset != "static" || len(p.Entrypoint) != 0 || !strings.Contains(p.StartWhy, "dist/index.html") {
		t.Fatalf("preset %q entrypoint %q why %q", p.Preset, p.Entrypoint, p.StartWhy)
	}
	if got := listDeploy(t, p.Dir); got != "a/b.css index.html" {
		t.Errorf(".deploy: %s", got)
	}
	p, err = Collect(dir, Selection{StartSet: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Preset != "plain" {
		t.Errorf("with a configured start: preset %q", p.Preset)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "src/app.ts")); err != nil {
		t.Errorf("plain app lost its files: %v", err)
	}
}
