package console

import (
	"context"
	"io/fs"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/deployfile"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/state"
)

// Row is one store of the fleet view.
type Row struct {
	Store, Region, Framework string
	Release                  string
	Status                   string
	Commit, Message          string
	Health                   string // healthy, degraded, down, stopped, -
	Healthy, Targets         int
	Instances                int
	LastJob                  *jobs.Job
	URL                      string
	Protected                bool
}

// commitCache keeps commit subjects (immutable per id).
type commitCache struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *Console) subject(ctx context.Context, sha string) string {
	if sha == "" || c.o.Push == nil || c.o.Push.Repo == nil {
		return ""
	}
	c.commits.mu.Lock()
	msg, ok := c.commits.m[sha]
	c.commits.mu.Unlock()
	if ok {
		return msg
	}
	d, err := c.o.Push.Repo.Describe(ctx, sha)
	if err != nil {
		return ""
	}
	c.commits.mu.Lock()
	c.commits.m[sha] = d.Subject
	c.commits.mu.Unlock()
	return d.Subject
}

// config returns the config at the configured branch's head in the cache (nil without a repository).
func (c *Console) config(ctx context.Context) *config.Config {
	if c.o.Push == nil || c.o.Push.Repo == nil {
		return nil
	}
	r := c.o.Push.Repo
	head, err := r.Resolve(ctx, "refs/heads/"+r.Branch())
	if err != nil {
		return nil
	}
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	if c.cfgAt == head && c.cfg != nil {
		return c.cfg
	}
	cfg, tree, err := r.Config(ctx, head)
	if err != nil {
		return nil
	}
	c.cfg, c.cfgAt, c.cfgTree = cfg, head, tree
	return cfg
}

// fleet gathers one row per store: the config's deployable stores, plus any store with a release or a route.
func (c *Console) fleet(ctx context.Context) ([]Row, error) {
	cfg := c.config(ctx)
	ids := map[string]bool{}
	if cfg != nil {
		for _, id := range cfg.DeployableIDs() {
			ids[id] = true
		}
	}
	health := map[string][2]int{} // store -> healthy, targets
	stopped := map[string]bool{}
	for _, svc := range c.o.Router.Services() {
		store, _, _ := strings.Cut(svc.Name, "/")
		ids[store] = true
		h := health[store]
		for _, t := range svc.Targets {
			h[1]++
			if t.Healthy {
				h[0]++
			}
		}
		health[store] = h
		if svc.Maintenance != "" {
			stopped[store] = true
		}
	}
	insts := map[string]int{}
	if list, err := c.o.Driver.List(ctx, map[string]string{driver.LabelManaged: "true"}); err == nil {
		for _, in := range list {
			if in.State == "running" && in.Labels[driver.LabelRole] == "web" {
				insts[in.Labels[driver.LabelStore]]++
			}
		}
	}
	last := map[string]*jobs.Job{}
	if c.o.Push != nil {
		if m, err := c.o.Push.Queue.LastPerStore(ctx); err == nil {
			last = m
			for id := range m {
				ids[id] = true
			}
		}
	}
	port := ""
	if _, p, err := net.SplitHostPort(c.o.RouterAddr()); err == nil && p != "80" {
		port = ":" + p
	}
	var rows []Row
	for id := range ids {
		r := Row{Store: id, LastJob: last[id], Instances: insts[id], Health: "-", URL: "http://" + id + ".localhost" + port + "/"}
		if cfg != nil && cfg.Store(id) != nil {
			st := cfg.Store(id)
			r.Region, r.Framework, r.Protected = st.Region, cfg.Framework(id), st.Protected
			if len(st.Domains) > 0 {
				r.URL = "http://" + st.Domains[0] + port + "/"
			}
		}
		if rel, err := c.o.State.Current(ctx, id); err == nil && rel != nil {
			r.Release, r.Status, r.Commit = rel.ID, string(rel.Status), rel.Commit
		}
		h := health[id]
		r.Healthy, r.Targets = h[0], h[1]
		switch {
		case stopped[id]:
			r.Health = "stopped"
		case h[1] == 0:
		case h[0] == h[1]:
			r.Health = "healthy"
		case h[0] == 0:
			r.Health = "down"
		default:
			r.Health = "degraded"
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Store < rows[j].Store })
	for i := range rows {
		rows[i].Message = c.subject(ctx, rows[i].Commit)
	}
	return rows, nil
}

// EnvVar is one variable of a store's env as the console shows it.
type EnvVar struct {
	Name, Value, From string
	Secret            bool
}

// Hook is one stage of the effective pipeline.
type Hook struct {
	Stage, Command, App, Source string
	Timeout                     time.Duration
}

// StorePage is what the store page shows.
type StorePage struct {
	Row
	Releases  []*state.Release
	Env       []EnvVar
	Hooks     []Hook
	Instances []driver.Instance
	Jobs      []*jobs.Job
	HookError string
	// Who triggered each release (from the job that made it).
	Who map[string]string
}

func (c *Console) storePage(ctx context.Context, id string) (*StorePage, error) {
	rows, err := c.fleet(ctx)
	if err != nil {
		return nil, err
	}
	p := &StorePage{}
	found := false
	for _, r := range rows {
		if r.Store == id {
			p.Row, found = r, true
		}
	}
	if !found {
		return nil, nil
	}
	if p.Releases, err = c.o.State.Releases(ctx, id, 50); err != nil {
		return nil, err
	}
	cfg := c.config(ctx)
	if cfg != nil && cfg.Store(id) != nil {
		for k, v := range cfg.Env(id) {
			p.Env = append(p.Env, EnvVar{Name: k, Value: v, From: cfg.File})
		}
		for _, s := range cfg.Chain(id) {
			for _, name := range s.Secrets {
				p.Env = append(p.Env, EnvVar{Name: name, Value: "••••••", From: "secret (read at deploy time)", Secret: true})
			}
		}
		c.cfgMu.Lock()
		tree := c.cfgTree
		c.cfgMu.Unlock()
		p.hooks(cfg, tree, id)
	}
	if rt, err := c.o.State.Env(ctx, id); err == nil {
		for k, v := range rt {
			p.Env = append(p.Env, EnvVar{Name: k, Value: v, From: "slipway env set"})
		}
	}
	sort.SliceStable(p.Env, func(i, j int) bool { return p.Env[i].Name < p.Env[j].Name })
	if list, err := c.o.Driver.List(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelStore: id}); err == nil {
		p.Instances = list
		sort.Slice(p.Instances, func(i, j int) bool { return p.Instances[i].Name < p.Instances[j].Name })
	}
	p.Who = map[string]string{}
	if c.o.Push != nil {
		all, _ := c.o.Push.Queue.List(ctx, jobs.Filter{Store: id, Limit: 200})
		for _, j := range all {
			if j.Release != "" {
				p.Who[j.Release] = j.Who + " (" + j.Trigger + ")"
			}
		}
		if len(all) > 20 {
			all = all[:20]
		}
		p.Jobs = all
	}
	return p, nil
}

// hooks reads the effective pipeline from the commit's deploy files (never the environment: its SLIPWAY_HOOK_* are serve's).
func (p *StorePage) hooks(cfg *config.Config, tree fs.FS, id string) {
	eff, err := deployfile.Load(cfg, id, deployfile.WithFS(tree), deployfile.WithGetenv(nil))
	if err != nil {
		p.HookError = err.Error()
		return
	}
	for _, h := range []struct {
		stage string
		h     deployfile.Hook
	}{{"pre-deploy", eff.PreDeploy}, {"install", eff.Install}, {"destructive install", eff.DestructiveInstall}, {"post-deploy", eff.PostDeploy}} {
		p.Hooks = append(p.Hooks, Hook{Stage: h.stage, Command: h.h.Command, App: h.h.App, Source: h.h.Source, Timeout: h.h.Timeout})
	}
}
