// Package config loads and validates a monorepo's Slipway configuration:
// slipway.yaml / slipway.json, or Alokai's alokai.config.json unchanged.
package config

import (
	"maps"
	"slices"
	"sort"
)

// Format names the kind of config file a project uses.
type Format string

const (
	// FormatSlipway is slipway.yaml, slipway.yml or slipway.json.
	FormatSlipway Format = "slipway"
	// FormatAlokai is alokai.config.json in Alokai's own format.
	FormatAlokai Format = "alokai"
)

// Candidate config file names, in the order they are looked for.
var configNames = []string{"slipway.yaml", "slipway.yml", "slipway.json", "alokai.config.json"}

// Defaults.
const (
	DefaultStoresDir = "apps/stores"
	// DefaultHealthPath is checked when an app configures no health path; any
	// answer below DefaultHealthMaxStatus passes (see Health.Default).
	DefaultHealthPath      = "/"
	DefaultHealthMaxStatus = 500
	DefaultPort            = 3000
	// DeleteFile lists, in a store's app folder, inherited paths the store removes.
	DeleteFile = ".slipway-delete"
)

// DefaultSkip are source names never composed: dependencies, build output and VCS data.
var DefaultSkip = []string{"node_modules", ".out", ".git", ".next", ".nuxt", ".output", "dist"}

// Config is a loaded, validated project configuration.
type Config struct {
	// Root is the absolute path of the monorepo root (the directory holding the config file).
	Root string `yaml:"-" json:"root"`
	// File is the config file's name relative to Root, as used in messages.
	File string `yaml:"-" json:"file"`
	// Format tells which kind of file File is.
	Format Format `yaml:"-" json:"format"`

	// Project names the monorepo; default: the root directory's name.
	Project string `yaml:"project" json:"project"`
	// StoresDir holds the store tree; default apps/stores.
	StoresDir string `yaml:"storesDir" json:"storesDir"`
	// Compose tunes composition.
	Compose ComposeSpec `yaml:"compose" json:"compose"`
	// Image holds image defaults for every app.
	Image ImageSpec `yaml:"image" json:"image"`
	// Verify tunes the verify stage of deploys.
	Verify VerifySpec `yaml:"verify" json:"verify"`
	// Registry is the default registry images are pushed to ("" = the embedded one).
	Registry string `yaml:"registry" json:"registry,omitempty"`
	// Source is the repository serve deploys from on a push.
	Source SourceSpec `yaml:"source" json:"source,omitzero"`
	// Apps are the base applications.
	Apps []*App `yaml:"apps" json:"apps"`
	// Schedules are commands run on cron schedules in each store's live release.
	Schedules []*ScheduleSpec `yaml:"schedules" json:"schedules,omitempty"`
	// Stores are keyed by store id; entries exist for every store directory found, configured or not.
	Stores map[string]*Store `yaml:"stores" json:"stores"`
	// Targets map a region to where its stores run (driver and engine); "default" takes the rest.
	Targets map[string]*Target `yaml:"targets" json:"targets,omitempty"`

	// Warnings are problems that did not fail validation.
	Warnings []Problem `yaml:"-" json:"warnings,omitempty"`
}

// ComposeSpec tunes composition.
type ComposeSpec struct {
	// Skip lists file or directory names never copied from sources; default DefaultSkip.
	Skip []string `yaml:"skip" json:"skip"`
}

// VerifySpec tunes the verify stage.
type VerifySpec struct {
	// DNS says what a store domain that does not resolve is: "warn" (default), "error" or "off".
	DNS string `yaml:"dns" json:"dns"`
}

// ImageSpec describes how an app's image is assembled.
type ImageSpec struct {
	Pos Pos `yaml:"-" json:"-"`
	// Base is a registry reference, "scratch", "oci-layout:PATH[:tag]" or "tarball:PATH".
	Base string `yaml:"base" json:"base,omitempty"`
	// WorkDir is where .deploy lands in the image; default /var/www.
	WorkDir string `yaml:"workdir" json:"workdir,omitempty"`
	// Stacks are the images detected stacks build in (node, python, ruby,
	// go), by stack name; an app's entry wins over the project's, which
	// wins over the official language image (see stacks.go).
	Stacks map[string]string `yaml:"stacks" json:"stacks,omitempty"`
}

// App is a base application that stores compose from.
type App struct {
	Pos Pos `yaml:"-" json:"-"`
	// ID names the app; default: the last element of Path. Store directories override it in a folder of this name.
	ID string `yaml:"id" json:"id"`
	// Path is the app's directory relative to the root.
	Path string `yaml:"path" json:"path"`
	// Framework is the store framework this app serves (next, nuxt, ...); empty = included in every store.
	Framework string `yaml:"framework" json:"framework,omitempty"`
	// Build is a shell command run instead of the package.json build script
	// (`build: COMMAND`; read through BuildSpec).
	Build string `yaml:"-" json:"build,omitempty"`
	// BuildSpec is the `build:` key; its mapping form is a Dockerfile build (dockerbuild.go).
	BuildSpec BuildSpec `yaml:"build" json:"dockerBuild,omitzero"`
	// Port the app listens on (given to it in PORT); default 3000.
	Port int `yaml:"port" json:"port"`
	// Health configures the health check.
	Health Health `yaml:"health" json:"health"`
	// Entrypoint overrides the framework preset's command.
	Entrypoint []string `yaml:"entrypoint" json:"entrypoint,omitempty"`
	// Deploy selects production files when no preset fits.
	Deploy DeployFiles `yaml:"deploy" json:"deploy"`
	// Image overrides the project's image defaults for this app.
	Image ImageSpec `yaml:"image" json:"image"`
	// Env is set for this app in every store (store env wins).
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// Static, a directory of the production files (".": all of them),
	// makes the app a static site: no process runs, the router serves the
	// release's files itself.
	Static string `yaml:"static" json:"static,omitempty"`
	// SPA, for a static site, answers paths that name no file with
	// index.html (client-side routing) instead of the site's 404.
	SPA bool `yaml:"spa" json:"spa,omitempty"`
	// Processes are the app's process types besides (or including) web; a
	// Procfile in the app adds those the config does not name.
	Processes map[string]*ProcessSpec `yaml:"processes" json:"processes,omitempty"`
}

// ScheduleSpec is a command run on a schedule, as a one-off in the live
// release of every store that has App, never overlapping itself.
type ScheduleSpec struct {
	Pos Pos `yaml:"-" json:"-"`
	// Name identifies it in logs; default "cron-<index>".
	Name string `yaml:"name" json:"name,omitempty"`
	// Cron is "*/5 * * * *" (minute hour day-of-month month day-of-week) or "@every 30s".
	Cron    string `yaml:"cron" json:"cron"`
	Command string `yaml:"command" json:"command"`
	// App whose image runs it; default each store's first app.
	App string `yaml:"app" json:"app,omitempty"`
	// Timeout kills a run; default 10m.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// ProcessSpec is one process type of an app: web is routed and health-gated;
// any other name (worker, …) runs beside it with the same env and /data.
type ProcessSpec struct {
	// Command runs through /bin/sh -c in the image's working directory;
	// for web, empty keeps the entrypoint.
	Command string `yaml:"command" json:"command,omitempty"`
	// Instances to run; default 1.
	Instances int `yaml:"instances" json:"instances,omitempty"`
}

// Health configures an app's health check.
type Health struct {
	// Path is requested with GET and must answer 2xx or 3xx. Unset, "/" is
	// requested and any answer below 500 passes, so an unmodified app (which
	// has no /healthz) is healthy once it serves.
	Path string `yaml:"path" json:"path"`
	// Default is true when Path was not configured (the lenient check applies).
	Default bool `yaml:"-" json:"default,omitempty"`
	// Interval between checks; default 1s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Timeout of one check; default 5s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Deadline for an instance to become healthy; default 60s.
	Deadline Duration `yaml:"deadline" json:"deadline"`
}

// DeployFiles selects production files by glob, relative to the built app.
type DeployFiles struct {
	Include []string `yaml:"include" json:"include,omitempty"`
	Exclude []string `yaml:"exclude" json:"exclude,omitempty"`
}

// Store is one storefront: a node of the store tree.
type Store struct {
	Pos Pos    `yaml:"-" json:"-"`
	ID  string `yaml:"-" json:"id"`
	// ProjectName names the deployment target and the image repository.
	ProjectName string `yaml:"projectName" json:"projectName,omitempty"`
	// Region is where the store runs.
	Region string `yaml:"region" json:"region,omitempty"`
	// Framework selects the base app (next, nuxt); inherited from the parent when empty.
	Framework string `yaml:"framework" json:"framework,omitempty"`
	// Template stores are composed for inheritance but never deployed.
	Template bool `yaml:"template" json:"template"`
	// Parent overrides the parent given by directory nesting (for flat layouts).
	Parent string `yaml:"parent" json:"parent,omitempty"`
	// Domains route to the store in addition to <id>.localhost.
	Domains []string `yaml:"domains" json:"domains,omitempty"`
	// Env is the store's runtime and build env; inherited down the tree, nearer wins.
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// Secrets are env names whose values are read at deploy time, never stored.
	Secrets []string `yaml:"secrets" json:"secrets,omitempty"`
	// Protected stores refuse destructive deploys unless confirmed.
	Protected bool `yaml:"protected" json:"protected,omitempty"`
	// TLS is off, auto (default) or {cert, key} (edge.go); inherited.
	TLS TLSSpec `yaml:"tls" json:"tls,omitzero"`
	// HSTS sends Strict-Transport-Security over HTTPS (opt-in); inherited.
	HSTS *bool `yaml:"hsts" json:"hsts,omitempty"`
	// ErrorPages are the store's own 503 and 502 pages; inherited.
	ErrorPages ErrorPages `yaml:"errorPages" json:"errorPages,omitzero"`

	// Dir is the store directory relative to the root (slash-separated); "" if none.
	Dir string `yaml:"-" json:"dir"`
	// Configured is true when the config file has an entry for the store.
	Configured bool `yaml:"-" json:"configured"`
	// Children are the ids of stores whose parent this is, sorted.
	Children []string `yaml:"-" json:"children,omitempty"`
}

// AppFolder is the folder name that stores use to override this app.
func (a *App) AppFolder() string { return a.ID }

// Deployable reports whether the store is deployed (not a template).
func (s *Store) Deployable() bool { return !s.Template }

// Kind is "template" or "deployable".
func (s *Store) Kind() string {
	if s.Template {
		return "template"
	}
	return "deployable"
}

// Store returns the store with id, or nil.
func (c *Config) Store(id string) *Store { return c.Stores[id] }

// App returns the app with id, or nil.
func (c *Config) App(id string) *App {
	for _, a := range c.Apps {
		if a.ID == id {
			return a
		}
	}
	return nil
}

// StoreIDs returns every store id, sorted.
func (c *Config) StoreIDs() []string {
	return slices.Sorted(maps.Keys(c.Stores))
}

// DeployableIDs returns the ids of deployable stores, sorted.
func (c *Config) DeployableIDs() []string {
	var out []string
	for _, id := range c.StoreIDs() {
		if c.Stores[id].Deployable() {
			out = append(out, id)
		}
	}
	return out
}

// Roots returns the ids of stores with no parent, sorted.
func (c *Config) Roots() []string {
	var out []string
	for _, id := range c.StoreIDs() {
		if c.Stores[id].Parent == "" {
			out = append(out, id)
		}
	}
	return out
}

// Chain returns the store and its ancestors, root first, the store last.
func (c *Config) Chain(id string) []*Store {
	var chain []*Store
	seen := map[string]bool{}
	for s := c.Stores[id]; s != nil && !seen[s.ID]; s = c.Stores[s.Parent] {
		seen[s.ID] = true
		chain = append(chain, s)
	}
	slices.Reverse(chain)
	return chain
}

// Framework returns the store's framework, inherited from the nearest ancestor that sets one.
func (c *Config) Framework(id string) string {
	chain := c.Chain(id)
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].Framework != "" {
			return chain[i].Framework
		}
	}
	return ""
}

// Env returns the store's env: ancestors' entries overridden by nearer ones.
func (c *Config) Env(id string) map[string]string {
	env := map[string]string{}
	for _, s := range c.Chain(id) {
		maps.Copy(env, s.Env)
	}
	return env
}

// AppsFor returns the apps composed for a store: its framework's base app plus the always-included apps, in config order.
func (c *Config) AppsFor(id string) []*App {
	fw := c.Framework(id)
	var out []*App
	for _, a := range c.Apps {
		if a.Framework == "" || a.Framework == fw {
			out = append(out, a)
		}
	}
	return out
}

// Descendants returns the ids of every store below id, sorted.
func (c *Config) Descendants(id string) []string {
	var out []string
	var walk func(string)
	walk = func(p string) {
		for _, ch := range c.Stores[p].Children {
			out = append(out, ch)
			walk(ch)
		}
	}
	walk(id)
	sort.Strings(out)
	return out
}

// SkipSet returns the names composition skips.
func (c *Config) SkipSet() map[string]bool {
	set := map[string]bool{}
	for _, n := range c.Compose.Skip {
		set[n] = true
	}
	return set
}
