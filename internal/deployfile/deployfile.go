// Package deployfile reads deploy.yml, the pipeline hooks of a monorepo and of
// each store, and resolves the hooks a store's deploys run.
//
// Files and precedence, lowest first:
//
//  1. built-in defaults: every hook is a no-op (source "default");
//  2. deploy.yml at the monorepo root (next to slipway.yaml);
//  3. <store dir>/deploy.yml of each ancestor store, the root of the store tree first;
//  4. <store dir>/deploy.yml of the store itself;
//  5. SLIPWAY_HOOK_BEFORE_DEPLOY, _INSTALL, _DESTRUCTIVE_INSTALL, _AFTER_DEPLOY
//     in the environment of the process that deploys (an empty value is ignored).
//
// Layers 2–4 work per hook key: the nearest file that has the key gives the
// whole hook (command, app and timeout; fields are not merged across files),
// and a key a file does not mention is inherited unchanged. A key whose value
// is null, ~, nothing at all, or "" clears the inherited hook: the store runs
// no such hook unless a nearer file or the environment sets one again. An
// environment variable replaces only the command: the app and timeout of the
// hook it overrides still apply.
//
// The package sits below pipeline (it imports only config), so it returns its
// own types; the CLI converts them to pipeline.Hooks.
package deployfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-dev/slipway/internal/config"
)

// FileName is the deploy file's name, at the monorepo root and in store directories.
const FileName = "deploy.yml"

// Hook keys, in the order the pipeline runs them (destructive-install runs instead of install).
const (
	KeyPreDeploy          = "pre-deploy"
	KeyInstall            = "install"
	KeyDestructiveInstall = "destructive-install"
	KeyPostDeploy         = "post-deploy"
)

// Keys are the hook keys a deploy file may set, in pipeline order.
var Keys = []string{KeyPreDeploy, KeyInstall, KeyDestructiveInstall, KeyPostDeploy}

// Environment variables that override a hook's command.
const (
	EnvPreDeploy          = "SLIPWAY_HOOK_BEFORE_DEPLOY"
	EnvInstall            = "SLIPWAY_HOOK_INSTALL"
	EnvDestructiveInstall = "SLIPWAY_HOOK_DESTRUCTIVE_INSTALL"
	EnvPostDeploy         = "SLIPWAY_HOOK_AFTER_DEPLOY"
)

// EnvVar returns the environment variable that overrides the command of the hook key, or "".
func EnvVar(key string) string {
	switch key {
	case KeyPreDeploy:
		return EnvPreDeploy
	case KeyInstall:
		return EnvInstall
	case KeyDestructiveInstall:
		return EnvDestructiveInstall
	case KeyPostDeploy:
		return EnvPostDeploy
	}
	return ""
}

// SourceDefault is the Source of a hook no file or variable sets.
const SourceDefault = "default"

// Hook is one effective hook of a store.
type Hook struct {
	// Key is the hook key (KeyInstall, ...).
	Key string `json:"key"`
	// Command is run with a shell; "" means the stage runs nothing.
	Command string `json:"command"`
	// App whose image runs the hook; "" means the store's first app.
	App string `json:"app,omitempty"`
	// Timeout bounds the hook; 0 means the pipeline's default.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Source tells where Command came from: "default", "deploy.yml:12",
	// "apps/stores/fashion-brand/deploy.yml:3" (file:line of the key) or "env SLIPWAY_HOOK_INSTALL".
	Source string `json:"source"`
	// Cleared is true when the file at Source cleared an inherited hook.
	Cleared bool `json:"cleared,omitempty"`
	// Overrides is, for a hook set by an environment variable, the file hook it replaced
	// (whose App and Timeout still apply); "" otherwise.
	Overrides string `json:"overrides,omitempty"`
}

// Effective are the hooks a store's deploys run, with where each came from.
type Effective struct {
	Store              string `json:"store"`
	PreDeploy          Hook   `json:"preDeploy"`
	Install            Hook   `json:"install"`
	DestructiveInstall Hook   `json:"destructiveInstall"`
	PostDeploy         Hook   `json:"postDeploy"`
	// Files are the deploy files that were read, nearest last (paths relative to the root).
	Files []string `json:"files,omitempty"`
	// Warnings are problems that did not fail loading.
	Warnings []config.Problem `json:"warnings,omitempty"`
}

// Hook returns the hook of key, or nil for an unknown key.
func (e *Effective) Hook(key string) *Hook {
	switch key {
	case KeyPreDeploy:
		return &e.PreDeploy
	case KeyInstall:
		return &e.Install
	case KeyDestructiveInstall:
		return &e.DestructiveInstall
	case KeyPostDeploy:
		return &e.PostDeploy
	}
	return nil
}

type options struct {
	fsys   fs.FS
	getenv func(string) string
}

// Option configures Load.
type Option func(*options)

// WithFS reads deploy files from fsys, whose root is the monorepo root (a git
// tree at a commit, say); default: the directory cfg.Root on disk.
func WithFS(fsys fs.FS) Option { return func(o *options) { o.fsys = fsys } }

// WithGetenv reads the SLIPWAY_HOOK_* overrides with getenv; default os.Getenv.
// A nil getenv turns the overrides off.
func WithGetenv(getenv func(string) string) Option {
	return func(o *options) {
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		o.getenv = getenv
	}
}

// ErrNoStore is returned for a store id the config does not have.
var ErrNoStore = errors.New("no such store")

// Load resolves the effective hooks of store: the root deploy.yml, then each
// ancestor store's, then the store's own, then the SLIPWAY_HOOK_* variables
// (see the package doc). It returns a *config.ValidationError listing every
// problem, located at file:line:column, when a deploy file is invalid.
func Load(cfg *config.Config, store string, opts ...Option) (Effective, error) {
	o := options{getenv: os.Getenv}
	for _, opt := range opts {
		opt(&o)
	}
	if o.fsys == nil {
		o.fsys = os.DirFS(cfg.Root)
	}
	if cfg.Store(store) == nil {
		hint := ""
		if h := config.DidYouMean(store, cfg.StoreIDs()); h != "" {
			hint = " (" + h + ")"
		}
		return Effective{}, fmt.Errorf("%w %q in %s%s", ErrNoStore, store, cfg.File, hint)
	}
	eff := Effective{Store: store}
	for _, k := range Keys {
		*eff.Hook(k) = Hook{Key: k, Source: SourceDefault}
	}
	ps := &problems{}
	// Where each effective hook was written, for the per-store app check.
	set := map[string]*entry{}
	files := []string{FileName}
	for _, s := range cfg.Chain(store) {
		if s.Dir != "" {
			files = append(files, path.Join(s.Dir, FileName))
		}
	}
	appIDs := make([]string, 0, len(cfg.Apps))
	for _, a := range cfg.Apps {
		appIDs = append(appIDs, a.ID)
	}
	for _, name := range files {
		f := readFile(o.fsys, name, ps)
		if f == nil {
			continue
		}
		eff.Files = append(eff.Files, name)
		for _, k := range Keys {
			e, ok := f.hooks[k]
			if !ok {
				continue
			}
			if e.app != "" && cfg.App(e.app) == nil {
				ps.errorf(name, e.appPos, config.DidYouMean(e.app, appIDs), "hooks.%s.app: no app %q in %s", k, e.app, cfg.File)
				e.app = "" // reported once, not again by the store check below
			}
			set[k] = e
			*eff.Hook(k) = Hook{Key: k, Command: e.command, App: e.app, Timeout: e.timeout,
				Source: fmt.Sprintf("%s:%d", name, e.pos.Line), Cleared: e.cleared}
		}
	}
	// A root or parent file may name an app that this store does not have (a
	// nuxt store under a next parent): only the hooks it actually runs matter.
	storeApps := cfg.AppsFor(store)
	var names []string
	for _, a := range storeApps {
		names = append(names, a.ID)
	}
	for _, k := range Keys {
		e := set[k]
		if e == nil || e.app == "" || slices.Contains(names, e.app) {
			continue
		}
		hint := "override the hook in " + path.Join(cfg.Store(store).Dir, FileName)
		if e.file == path.Join(cfg.Store(store).Dir, FileName) {
			hint = config.DidYouMean(e.app, names)
		}
		ps.errorf(e.file, e.appPos, hint, "hooks.%s.app: store %s has no app %q (its apps: %s)", k, store, e.app, strings.Join(names, ", "))
	}
	for _, k := range Keys {
		env := EnvVar(k)
		v := o.getenv(env)
		if v == "" {
			continue
		}
		h := eff.Hook(k)
		if h.Source != SourceDefault && !h.Cleared {
			h.Overrides = h.Source
		}
		h.Command, h.Source, h.Cleared = v, "env "+env, false
	}
	if ps.hasErrors() {
		return Effective{}, &config.ValidationError{Problems: ps.sorted()}
	}
	eff.Warnings = ps.sorted()
	return eff, nil
}

// entry is one hook key as written in one file.
type entry struct {
	file    string
	pos     config.Pos // of the key
	cleared bool
	command string
	app     string
	appPos  config.Pos
	timeout time.Duration
}

type parsed struct {
	hooks map[string]*entry
}

// readFile reads and parses one deploy file; nil when there is none.
func readFile(fsys fs.FS, name string, ps *problems) *parsed {
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		st, err := rl.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			lookAlike(fsys, name, ps)
			return nil
		}
		if err == nil && !st.Mode().IsRegular() {
			ps.errorf(name, config.Pos{}, "deploy files must be regular files inside the repository", "not a regular file (%s)", st.Mode().Type())
			return nil
		}
	}
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		lookAlike(fsys, name, ps)
		return nil
	}
	if err != nil {
		ps.errorf(name, config.Pos{}, "", "reading: %v", err)
		return nil
	}
	// A file with errors still gives its valid hooks, so that one pass reports
	// every problem (an app a store lacks, say); Load fails in the end anyway.
	return parse(name, data, ps)
}

// lookAlike warns about deploy.yaml beside a missing deploy.yml: it would be silently ignored.
func lookAlike(fsys fs.FS, name string, ps *problems) {
	alt := strings.TrimSuffix(name, ".yml") + ".yaml"
	if _, err := fs.Stat(fsys, alt); err == nil {
		ps.warnf(alt, config.Pos{}, "rename it to "+path.Base(name), "ignored: Slipway reads %s", path.Base(name))
	}
}

// Spryker's names for the hooks, so a file written for it gets a useful hint.
var sprykerNames = map[string]string{
	"before-deploy": KeyPreDeploy, "before_deploy": KeyPreDeploy, "pre_deploy": KeyPreDeploy, "predeploy": KeyPreDeploy,
	"after-deploy": KeyPostDeploy, "after_deploy": KeyPostDeploy, "post_deploy": KeyPostDeploy, "postdeploy": KeyPostDeploy,
	"destructive_install": KeyDestructiveInstall,
}

var hookFields = []string{"command", "app", "timeout"}

// parse decodes one deploy file, reporting every problem with its position.
func parse(name string, data []byte, ps *problems) *parsed {
	f := &parsed{hooks: map[string]*entry{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		ps.list = append(ps.list, syntaxProblem(name, err))
		return f
	}
	if len(doc.Content) == 0 {
		return f // empty, or only comments
	}
	top := resolve(doc.Content[0])
	if isNull(top) {
		return f
	}
	if top.Kind != yaml.MappingNode {
		ps.errorf(name, pos(top), "", "the file must hold a mapping with the key \"hooks\", found %s", kindName(top))
		return f
	}
	for _, kv := range pairs(name, top, "", ps) {
		k, v := kv[0], kv[1]
		if k.Value != "hooks" {
			hint := config.DidYouMean(k.Value, []string{"hooks"})
			if hint == "" {
				hint = `a deploy file has one key, "hooks"`
			}
			ps.errorf(name, pos(k), hint, "unknown key %q", k.Value)
			continue
		}
		if isNull(v) {
			continue
		}
		if v.Kind != yaml.MappingNode {
			ps.errorf(name, pos(v), "", "hooks: expected a mapping of %s, found %s", strings.Join(Keys, ", "), kindName(v))
			continue
		}
		for _, hk := range pairs(name, v, "hooks.", ps) {
			key, val := hk[0], hk[1]
			if !slices.Contains(Keys, key.Value) {
				hint := config.DidYouMean(key.Value, Keys)
				if alt, ok := sprykerNames[strings.ToLower(key.Value)]; ok {
					hint = fmt.Sprintf("did you mean %q?", alt)
				}
				if hint == "" {
					hint = "hooks are " + strings.Join(Keys, ", ")
				}
				ps.errorf(name, pos(key), hint, "unknown hook %q", "hooks."+key.Value)
				continue
			}
			if e := parseHook(name, key, val, ps); e != nil {
				f.hooks[key.Value] = e
			}
		}
	}
	return f
}

// parseHook decodes the value of one hook key: null or "" (clear), a command
// string, or a mapping with command, app and timeout.
func parseHook(name string, key, val *yaml.Node, ps *problems) *entry {
	where := "hooks." + key.Value
	e := &entry{file: name, pos: pos(key)}
	clearHint := fmt.Sprintf("to clear an inherited hook write `%s: null`", key.Value)
	switch {
	case isNull(val):
		e.cleared = true
		return e
	case val.Kind == yaml.ScalarNode:
		cmd, ok := command(name, where, val, ps)
		if !ok {
			return nil
		}
		if cmd == "" {
			e.cleared = true
		}
		e.command = cmd
		return e
	case val.Kind != yaml.MappingNode:
		ps.errorf(name, pos(val), "join several commands with && or call a script", "%s: expected a command or a mapping with command, app and timeout, found %s", where, kindName(val))
		return nil
	}
	ok := true
	hasCommand := false
	for _, kv := range pairs(name, val, where+".", ps) {
		k, v := kv[0], kv[1]
		field := where + "." + k.Value
		switch k.Value {
		case "command":
			hasCommand = true
			if isNull(v) {
				ps.errorf(name, pos(v), clearHint, "%s: command is empty", field)
				ok = false
				continue
			}
			cmd, good := command(name, field, v, ps)
			if good && cmd == "" {
				ps.errorf(name, pos(v), clearHint, "%s: command is empty", field)
				good = false
			}
			ok = ok && good
			e.command = cmd
		case "app":
			if v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "" {
				ps.errorf(name, pos(v), "", "%s: expected an app id", field)
				ok = false
				continue
			}
			e.app, e.appPos = v.Value, pos(v)
		case "timeout":
			d, err := time.ParseDuration(v.Value)
			switch {
			case v.Kind != yaml.ScalarNode || isNull(v):
				ps.errorf(name, pos(v), `write it like "90s" or "10m"`, "%s: expected a duration", field)
				ok = false
			case err != nil:
				ps.errorf(name, pos(v), `write it like "90s" or "10m"`, "%s: %q is not a duration", field, v.Value)
				ok = false
			case d <= 0:
				ps.errorf(name, pos(v), "leave it out for the default", "%s: %q must be positive", field, v.Value)
				ok = false
			default:
				e.timeout = d
			}
		default:
			ps.errorf(name, pos(k), config.DidYouMean(k.Value, hookFields), "unknown key %q", field)
			ok = false
		}
	}
	if !hasCommand {
		ps.errorf(name, pos(key), clearHint, "%s: missing key \"command\"", where)
		ok = false
	}
	if !ok {
		return nil
	}
	return e
}

// command returns a scalar as a command; a YAML boolean or number is refused
// with a hint, since `post-deploy: true` most likely meant the shell's true.
func command(name, where string, n *yaml.Node, ps *problems) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		ps.errorf(name, pos(n), "", "%s: expected a command, found %s", where, kindName(n))
		return "", false
	}
	if n.Tag != "!!str" {
		ps.errorf(name, pos(n), fmt.Sprintf("quote it: \"%s\"", n.Value), "%s: %s is not a command (YAML reads it as %s)", where, n.Value, strings.TrimPrefix(n.Tag, "!!"))
		return "", false
	}
	if n.Value != "" && strings.TrimSpace(n.Value) == "" {
		ps.errorf(name, pos(n), "write null to clear the hook", "%s: command is blank", where)
		return "", false
	}
	return n.Value, true
}

// pairs returns a mapping's key/value nodes, reporting duplicate and non-scalar keys.
func pairs(name string, m *yaml.Node, prefix string, ps *problems) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			ps.errorf(name, pos(k), "", "%skeys must be plain names, found %s", prefix, kindName(k))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			ps.errorf(name, pos(k), fmt.Sprintf("first defined at line %d", prev.Line), "duplicate key %q", prefix+k.Value)
			continue
		}
		seen[k.Value] = k
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func pos(n *yaml.Node) config.Pos {
	if n == nil {
		return config.Pos{}
	}
	return config.Pos{Line: n.Line, Column: n.Column}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

var yamlLineRe = regexp.MustCompile(`line (\d+)(?:, column (\d+))?:?\s*`)

// syntaxProblem turns a YAML parser error into a located Problem.
func syntaxProblem(file string, err error) config.Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := config.Problem{File: file, Severity: config.Error, Message: "syntax error: " + msg}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Column = 1
		if m[2] != "" {
			p.Column, _ = strconv.Atoi(m[2])
		}
		p.Message = "syntax error: " + strings.TrimSpace(yamlLineRe.ReplaceAllString(msg, ""))
	}
	return p
}

// problems collects findings across every file of a store's chain.
type problems struct {
	list []config.Problem
}

func (ps *problems) add(sev config.Severity, file string, p config.Pos, hint, format string, args ...any) {
	ps.list = append(ps.list, config.Problem{File: file, Line: p.Line, Column: p.Column, Severity: sev, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (ps *problems) errorf(file string, p config.Pos, hint, format string, args ...any) {
	ps.add(config.Error, file, p, hint, format, args...)
}

func (ps *problems) warnf(file string, p config.Pos, hint, format string, args ...any) {
	ps.add(config.Warning, file, p, hint, format, args...)
}

func (ps *problems) hasErrors() bool {
	return slices.ContainsFunc(ps.list, func(p config.Problem) bool { return p.Severity == config.Error })
}

// sorted orders problems by file, line and column; nil when there are none.
func (ps *problems) sorted() []config.Problem {
	if len(ps.list) == 0 {
		return nil
	}
	out := slices.Clone(ps.list)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return out
}
