package pipeline

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

// Hosts returns the host names an app of a store answers on. The framework app
// (the storefront) gets <store>.localhost and the store's domains; every other
// app gets <app>.<store>.localhost and <app>.<domain> for each domain.
func Hosts(cfg *config.Config, store string, app *config.App) []string {
	st := cfg.Store(store)
	if app.Framework != "" {
		return append([]string{proxy.LocalHost(store)}, st.Domains...)
	}
	hosts := []string{app.ID + "." + proxy.LocalHost(store)}
	for _, d := range st.Domains {
		hosts = append(hosts, app.ID+"."+strings.TrimPrefix(d, "*."))
	}
	return hosts
}

// SecretValues reads the store's secrets at deploy time: NAME from the
// environment, or the file named by NAME_FILE. A missing secret is an error.
func SecretValues(cfg *config.Config, store string, getenv func(string) string) (map[string]string, error) {
	return secretValues(cfg, store, getenv, nil)
}

// secretValues is SecretValues where a secret serve keeps (stored, set with
// `slipway secrets set`) may be absent: serve adds its value to the deploy.
func secretValues(cfg *config.Config, store string, getenv func(string) string, stored map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	var missing []string
	for _, s := range cfg.Chain(store) {
		for _, name := range s.Secrets {
			if v := getenv(name); v != "" {
				out[name] = v
				continue
			}
			if f := getenv(name + "_FILE"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, fmt.Errorf("secret %s: reading %s_FILE: %w", name, name, err)
				}
				out[name] = strings.TrimRight(string(b), "\r\n")
				continue
			}
			if stored[name] {
				continue
			}
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("store %s needs secret(s) %s: set them in the environment (or NAME_FILE pointing at a file), or keep them in serve with `slipway secrets set NAME --store-id %s`", store, strings.Join(missing, ", "), store)
	}
	return out, nil
}

// RequestOptions complete a DeployRequest.
type RequestOptions struct {
	Commit      string
	Kind        state.Kind
	Destructive bool
	Wait        bool
	// RuntimeEnv is env set with `slipway env set`, over the config's.
	RuntimeEnv map[string]string
	// StoredSecrets names the secrets serve keeps for the store (`slipway
	// secrets set`): the config may list them without a value in the environment.
	StoredSecrets []string
	Hooks         Hooks
	Getenv        func(string) string
}

// NewDeployRequest assembles the request for one store from the config and its built images.
func NewDeployRequest(cfg *config.Config, store string, images []BuiltImage, o RequestOptions) (DeployRequest, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	stored := map[string]bool{}
	for _, n := range o.StoredSecrets {
		stored[n] = true
	}
	secrets, err := secretValues(cfg, store, o.Getenv, stored)
	if err != nil {
		return DeployRequest{}, err
	}
	env := cfg.Env(store)
	maps.Copy(env, o.RuntimeEnv)
	var secretNames []string
	for k, v := range secrets {
		env[k] = v
		secretNames = append(secretNames, k)
	}
	req := DeployRequest{Project: cfg.Project, Store: store, Commit: o.Commit, Kind: o.Kind, Destructive: o.Destructive,
		Env: env, Secrets: secretNames, Hooks: o.Hooks, Wait: o.Wait, DNS: cfg.Verify.DNS}
	if req.Site, err = SiteFor(cfg, store); err != nil {
		return DeployRequest{}, err
	}
	for _, app := range cfg.AppsFor(store) {
		var im *BuiltImage
		for i := range images {
			if images[i].Store == store && images[i].App == app.ID {
				im = &images[i]
			}
		}
		if im == nil || im.Err != nil {
			return DeployRequest{}, fmt.Errorf("store %s: no image for app %s", store, app.ID)
		}
		req.Apps = append(req.Apps, AppDeploy{
			App: app.ID, Image: driver.Image{Ref: im.DriverRef, Insecure: im.Insecure}, Ref: im.Ref, Digest: im.Digest, Port: app.Port,
			Health: healthCheck(app.Health),
			Hosts:  Hosts(cfg, store, app), Env: app.Env,
			Base: im.Base, MissingInterpreter: im.MissingInterpreter, ConfigFile: cfg.File,
			Static: app.Static, SPA: app.SPA,
			Instances: im.WebInstances, Processes: processes(im),
		})
		if im.Release != "" && req.Hooks.Install.Command == "" {
			// Procfile release: is the install hook, as on Heroku, unless deploy.yml sets one.
			req.Hooks.Install = Hook{Command: im.Release, App: app.ID}
		}
	}
	req.Schedules = storeSchedules(cfg, store)
	return req, nil
}

// storeSchedules are the config's schedules whose app the store has.
func storeSchedules(cfg *config.Config, store string) []Schedule {
	var out []Schedule
	for _, s := range cfg.Schedules {
		if s.App != "" && !slices.ContainsFunc(cfg.AppsFor(store), func(a *config.App) bool { return a.ID == s.App }) {
			continue
		}
		out = append(out, Schedule{Name: s.Name, Cron: s.Cron, Command: s.Command, App: s.App, Timeout: s.Timeout.D()})
	}
	return out
}

// DefaultHookTimeout bounds hooks that set none.
const DefaultHookTimeout = 10 * time.Minute

// healthCheck is the router's check for an app's health settings: strict
// (2xx/3xx) on a configured path, lenient (below 500 on "/") by default.
func healthCheck(h config.Health) proxy.HealthCheck {
	hc := proxy.HealthCheck{Path: h.Path, Interval: h.Interval.D(), Timeout: h.Timeout.D(), Deadline: h.Deadline.D()}
	if h.Default {
		hc.MaxStatus = config.DefaultHealthMaxStatus
	}
	return hc
}

func processes(im *BuiltImage) []Process {
	var out []Process
	for _, p := range im.Processes {
		out = append(out, Process{Name: p.Name, Command: p.Command, Instances: p.Instances, Image: driver.Image{Ref: p.DriverRef, Insecure: im.Insecure}})
	}
	return out
}
