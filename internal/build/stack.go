package build

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Stack names: how an app without a callback, build command or framework
// preset is built and started, detected from its files.
const (
	StackNode   = "node"
	StackPython = "python"
	StackRuby   = "ruby"
	StackGo     = "go"
	StackStatic = "static"
)

// Stacks are the detected stacks, in the order they are tried.
var Stacks = []string{StackNode, StackPython, StackRuby, StackGo, StackStatic}

// Where the stacks put what they install or build, relative to the app (all
// shipped in .deploy: none is under an excluded directory).
const (
	// PythonPackages is pip's --target; the image's PYTHONPATH names it.
	PythonPackages = ".python_packages"
	// RubyBundlePath is bundler's path; the image's BUNDLE_PATH names it.
	RubyBundlePath = "vendor/bundle"
	// GoBinary is the built Go program.
	GoBinary = ".gobin/app"
)

// staticDirs are where a build's index.html is looked for, in order.
var staticDirs = []string{".", "dist", "build", "out", "public"}

// Detection says how an app is built: by what, found from which file.
type Detection struct {
	// By is what decided the build: "callback", "command" or "stack"; "" when
	// nothing is built.
	By string `json:"by,omitempty"`
	// Stack is the detected stack ("" for a callback or command).
	Stack string `json:"stack,omitempty"`
	// Matched is the file that decided (e.g. go.mod, .artifakt/build.sh).
	Matched string `json:"matched,omitempty"`
	// Why says it in words.
	Why string `json:"why"`
	// PackageManager and Lockfile are the Node package manager and the file it was read from.
	PackageManager string `json:"packageManager,omitempty"`
	Lockfile       string `json:"lockfile,omitempty"`
	// Steps are the install and build commands, in order.
	Steps []Step `json:"steps,omitempty"`
}

// Detect says how the app in dir is built: its callback (.slipway/build.sh,
// else .artifakt/build.sh), else command (the config's build), else the stack
// its files name: package.json (node), requirements.txt or pyproject.toml
// (python), Gemfile (ruby), go.mod (go). An app with none of these builds
// nothing; if its files hold an index.html it is a static site (Collect).
func Detect(dir, command string) (*Detection, error) {
	for _, cb := range []string{CallbackFile, ArtifaktCallbackFile} {
		if st, err := os.Stat(filepath.Join(dir, cb)); err == nil && st.Mode().IsRegular() {
			return &Detection{By: "callback", Matched: cb, Why: cb + " exists (it replaces every other build)",
				Steps: []Step{{Name: cb, Argv: []string{"/bin/sh", cb}, Kind: "build"}}}, nil
		}
	}
	if strings.TrimSpace(command) != "" {
		return &Detection{By: "command", Why: "the app's `build` is set in the config",
			Steps: []Step{{Name: command, Argv: []string{"/bin/sh", "-c", command}, Kind: "build"}}}, nil
	}
	return DetectStack(dir)
}

// DetectStack detects the stack from the app's files alone.
func DetectStack(dir string) (*Detection, error) {
	if has(dir, "package.json") {
		return detectNode(dir)
	}
	for _, f := range []string{"requirements.txt", "pyproject.toml"} {
		if has(dir, f) {
			return detectPython(dir, f), nil
		}
	}
	if has(dir, "Gemfile") {
		return detectRuby(dir), nil
	}
	if has(dir, "go.mod") {
		return detectGo(dir), nil
	}
	if d := staticDir(dir); d != "" {
		return &Detection{By: "stack", Stack: StackStatic, Matched: filepath.ToSlash(filepath.Join(d, "index.html")),
			Why: "no package.json, requirements.txt, pyproject.toml, Gemfile or go.mod, and an index.html: a static site"}, nil
	}
	return &Detection{Why: "no callback, build command, package.json, requirements.txt, pyproject.toml, Gemfile, go.mod or index.html: nothing to build"}, nil
}

func has(dir, f string) bool {
	_, err := os.Stat(filepath.Join(dir, f))
	return err == nil
}

// staticDir is the first of staticDirs holding an index.html, "" for none.
func staticDir(dir string) string {
	for _, d := range staticDirs {
		if st, err := os.Stat(filepath.Join(dir, d, "index.html")); err == nil && st.Mode().IsRegular() {
			return d
		}
	}
	return ""
}

func detectNode(dir string) (*Detection, error) {
	scripts, err := packageScripts(dir)
	if err != nil {
		return nil, err
	}
	pm, lock, install := packageManager(dir)
	d := &Detection{By: "stack", Stack: StackNode, Matched: "package.json", PackageManager: pm, Lockfile: lock,
		Why: "package.json exists; the package manager is " + pm}
	if lock != "" {
		d.Why += " (from " + lock + ")"
		d.Steps = append(d.Steps, Step{Name: strings.Join(install, " "), Argv: install, NoProductionEnv: true, Install: true, Kind: "install"})
	} else {
		d.Why += " (no lockfile: nothing is installed)"
	}
	if _, ok := scripts["build"]; ok {
		d.Steps = append(d.Steps, Step{Name: pm + " run build", Argv: []string{pm, "run", "build"}, Kind: "build"})
	}
	return d, nil
}

// packageScripts reads package.json's scripts.
func packageScripts(dir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, err
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "package.json"), err)
	}
	return pkg.Scripts, nil
}

// detectPython installs requirements.txt (or the pyproject's project) into
// PythonPackages with pip; an empty requirements.txt installs nothing.
func detectPython(dir, matched string) *Detection {
	d := &Detection{By: "stack", Stack: StackPython, Matched: matched, PackageManager: "pip", Why: matched + " exists"}
	target := []string{"python3", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "--target", PythonPackages}
	switch {
	case matched == "requirements.txt" && !hasRequirements(filepath.Join(dir, matched)):
		d.Why += " and names no package: nothing is installed"
	case matched == "requirements.txt":
		argv := append(target, "-r", "requirements.txt")
		d.Steps = append(d.Steps, Step{Name: strings.Join(argv, " "), Argv: argv, Kind: "install"})
	default:
		argv := append(target, ".")
		d.Steps = append(d.Steps, Step{Name: strings.Join(argv, " "), Argv: argv, Kind: "install"})
	}
	return d
}

// hasRequirements reports whether a requirements file names anything.
func hasRequirements(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true // let pip say what is wrong
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// rubyEnv is bundler's settings for the install and at run time: gems under
// RubyBundlePath, without the development and test groups.
var rubyEnv = map[string]string{"BUNDLE_PATH": RubyBundlePath, "BUNDLE_WITHOUT": "development:test"}

// detectRuby installs the Gemfile's gems with bundler into RubyBundlePath;
// with a Gemfile.lock the install is frozen to it, and with vendor/cache it
// installs from there only (no network).
func detectRuby(dir string) *Detection {
	d := &Detection{By: "stack", Stack: StackRuby, Matched: "Gemfile", PackageManager: "bundler", Why: "Gemfile exists"}
	env := map[string]string{}
	for k, v := range rubyEnv {
		env[k] = v
	}
	argv := []string{"bundle", "install"}
	if has(dir, "Gemfile.lock") {
		d.Lockfile = "Gemfile.lock"
		env["BUNDLE_FROZEN"] = "true"
		d.Why += " (frozen to Gemfile.lock)"
	}
	if has(dir, "vendor/cache") {
		argv = append(argv, "--local")
		d.Why += " (gems from vendor/cache)"
	}
	d.Steps = []Step{{Name: strings.Join(argv, " "), Argv: argv, Env: env, Kind: "install"}}
	return d
}

// goEnv builds a static binary, so it runs on any base, scratch included.
var goEnv = map[string]string{"CGO_ENABLED": "0"}

// detectGo downloads the modules go.sum names, then builds the main package
// (the module root's, else the only one under cmd/) into GoBinary.
func detectGo(dir string) *Detection {
	d := &Detection{By: "stack", Stack: StackGo, Matched: "go.mod", PackageManager: "go modules", Why: "go.mod exists"}
	if has(dir, "go.sum") {
		d.Lockfile = "go.sum"
		d.Steps = append(d.Steps, Step{Name: "go mod download", Argv: []string{"go", "mod", "download"}, Env: goEnv, Kind: "install"})
	}
	pkg := goMainPackage(dir)
	argv := []string{"go", "build", "-trimpath", "-buildvcs=false", "-o", GoBinary, pkg}
	d.Steps = append(d.Steps, Step{Name: strings.Join(argv, " "), Argv: argv, Env: goEnv, Kind: "build"})
	return d
}

// goMainPackage is "." when the module root holds Go files, else ./cmd/X
// when cmd/ has exactly one directory, else ".".
func goMainPackage(dir string) string {
	if m, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(m) > 0 {
		return "."
	}
	ents, err := os.ReadDir(filepath.Join(dir, "cmd"))
	if err != nil {
		return "."
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 1 {
		return "./cmd/" + dirs[0]
	}
	return "."
}

// Start is how a built app is started when neither the config nor the
// Procfile says: the stack's convention.
type Start struct {
	Command []string `json:"command,omitempty"`
	// Env is added to the image's env (where the stack installed to).
	Env map[string]string `json:"env,omitempty"`
	// Why names the convention that matched, or why none did.
	Why string `json:"why"`
}

// shellStart runs a command line that expands $PORT and $HOST.
func shellStart(line string) []string { return []string{"/bin/sh", "-c", "exec " + line} }

// StartConvention is the stack's start command for the built app in dir:
//
//   - node: `node <package.json main>`, else node server.js / index.js /
//     server.mjs / index.mjs, else `<pm> start` when package.json has a start script;
//   - python: gunicorn (when requirements name it) serving wsgi:app or app:app on
//     $HOST:$PORT, else python3 app.py / main.py / server.py / wsgi.py;
//   - ruby: puma (when Gemfile.lock names it) or rackup for a config.ru, on
//     $HOST:$PORT, else `bundle exec ruby app.rb` (or server.rb, main.rb);
//   - go: the binary built into GoBinary.
//
// An empty Command means the stack has no convention for the app's files.
func StartConvention(dir, stack string) Start {
	switch stack {
	case StackNode:
		return nodeStart(dir)
	case StackPython:
		return pythonStart(dir)
	case StackRuby:
		return rubyStart(dir)
	case StackGo:
		if st, err := os.Stat(filepath.Join(dir, GoBinary)); err == nil && st.Mode().IsRegular() {
			return Start{Command: []string{"./" + GoBinary}, Why: "go: the binary the build wrote to " + GoBinary}
		}
		return Start{Why: "go: " + GoBinary + " was not built"}
	}
	return Start{Why: "no start convention for " + stack}
}

func nodeStart(dir string) Start {
	if data, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil {
		var pkg struct {
			Main string `json:"main"`
		}
		if json.Unmarshal(data, &pkg) == nil && pkg.Main != "" {
			return Start{Command: []string{"node", pkg.Main}, Why: "node: package.json main"}
		}
	}
	for _, f := range []string{"server.js", "index.js", "server.mjs", "index.mjs"} {
		if has(dir, f) {
			return Start{Command: []string{"node", f}, Why: "node: " + f + " exists"}
		}
	}
	if scripts, err := packageScripts(dir); err == nil && scripts["start"] != "" {
		pm, _, _ := packageManager(dir)
		return Start{Command: []string{pm, "start"}, Why: "node: package.json has a start script"}
	}
	return Start{Why: "node: no package.json main, server.js, index.js or start script"}
}

var (
	gunicornRe = regexp.MustCompile(`(?mi)^\s*gunicorn\b|["']gunicorn\b`)
	pumaRe     = regexp.MustCompile(`(?m)^\s+puma \(`)
)

func pythonStart(dir string) Start {
	env := map[string]string{"PYTHONPATH": PythonPackages, "PYTHONUNBUFFERED": "1"}
	deps := readAll(dir, "requirements.txt") + readAll(dir, "pyproject.toml")
	if gunicornRe.MatchString(deps) {
		for _, m := range []string{"wsgi", "app"} {
			if has(dir, m+".py") {
				return Start{Command: shellStart("python3 -m gunicorn --bind ${HOST:-0.0.0.0}:${PORT} " + m + ":app"), Env: env,
					Why: "python: gunicorn is a dependency and " + m + ".py exists"}
			}
		}
	}
	for _, f := range []string{"app.py", "main.py", "server.py", "wsgi.py"} {
		if has(dir, f) {
			return Start{Command: []string{"python3", f}, Env: env, Why: "python: " + f + " exists"}
		}
	}
	return Start{Env: env, Why: "python: no app.py, main.py, server.py or wsgi.py"}
}

func rubyStart(dir string) Start {
	env := map[string]string{}
	for k, v := range rubyEnv {
		env[k] = v
	}
	if has(dir, "config.ru") {
		if pumaRe.MatchString(readAll(dir, "Gemfile.lock")) {
			return Start{Command: shellStart("bundle exec puma -b tcp://${HOST:-0.0.0.0}:${PORT} config.ru"), Env: env,
				Why: "ruby: config.ru exists and Gemfile.lock has puma"}
		}
		return Start{Command: shellStart("bundle exec rackup -o ${HOST:-0.0.0.0} -p ${PORT} config.ru"), Env: env,
			Why: "ruby: config.ru exists"}
	}
	for _, f := range []string{"app.rb", "server.rb", "main.rb"} {
		if has(dir, f) {
			return Start{Command: []string{"bundle", "exec", "ruby", f}, Env: env, Why: "ruby: " + f + " exists"}
		}
	}
	return Start{Env: env, Why: "ruby: no config.ru, app.rb, server.rb or main.rb"}
}

func readAll(dir, f string) string {
	b, err := os.ReadFile(filepath.Join(dir, f))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return string(b)
}

// DepsKey is the key the Cache keeps the install step s's node_modules
// under ("" when the app has no lockfile or s is no cached install).
func (c *Cache) DepsKey(dir string, s Step, env []string) (string, error) {
	if !s.Install {
		return "", nil
	}
	return c.depsKey(dir, s, env)
}
