package pipeline

import (
	"fmt"
	"slices"

	"github.com/slipway-dev/slipway/internal/api"
)

// Validate checks a deploy spec before anything runs: ids, bounds, hosts and
// instance counts. allowHosts lists wildcard hosts the config itself declares.
// Images are checked by whoever resolves them (serve), not here.
func (r *DeployRequest) Validate(l api.Limits, allowHosts ...string) error {
	if err := api.CheckID("store", r.Store); err != nil {
		return err
	}
	if r.Project != "" {
		if err := api.CheckID("project", r.Project); err != nil {
			return err
		}
	}
	if err := api.CheckCommit("commit", r.Commit); err != nil {
		return err
	}
	if !slices.Contains(api.Kinds, string(r.Kind)) {
		return api.Fieldf("kind", "%q is not a job kind", r.Kind)
	}
	if len(r.Apps) == 0 {
		return api.Fieldf("apps", "no app to deploy")
	}
	if len(r.Apps) > 64 {
		return api.Fieldf("apps", "more than 64 apps")
	}
	seenHost := map[string]string{}
	for i, a := range r.Apps {
		f := fmt.Sprintf("apps[%d]", i)
		if err := api.CheckID(f+".app", a.App); err != nil {
			return err
		}
		if a.Instances < 0 || a.Instances > l.Max() {
			return api.Fieldf(f+".instances", "%d instances: use 1 to %d", a.Instances, l.Max())
		}
		if a.Port < 0 || a.Port > 65535 {
			return api.Fieldf(f+".port", "%d is not a port", a.Port)
		}
		if len(a.Hosts) == 0 || len(a.Hosts) > 100 {
			return api.Fieldf(f+".hosts", "give 1 to 100 host names")
		}
		for j, h := range a.Hosts {
			hf := fmt.Sprintf("%s.hosts[%d]", f, j)
			if err := api.CheckHost(hf, h, l.AllowWildcardHosts || slices.Contains(allowHosts, h)); err != nil {
				return err
			}
			if other, dup := seenHost[h]; dup {
				return api.Fieldf(hf, "host %s is also routed to app %s", h, other)
			}
			seenHost[h] = a.App
		}
		if err := api.CheckImageRef(f, api.ImageRef{Store: r.Store, App: a.App, Ref: a.Ref, Digest: a.Digest}, l); err != nil {
			return err
		}
		if a.Digest == "" {
			return api.Fieldf(f+".digest", "the digest to run is needed")
		}
	}
	if len(r.Env) > 1024 {
		return api.Fieldf("env", "more than 1024 variables")
	}
	for k, v := range r.Env {
		if len(k) > 256 || len(v) > api.MaxSecretBytes {
			return api.Fieldf("env", "variable %.64s is too long", k)
		}
	}
	for _, h := range []Hook{r.Hooks.PreDeploy, r.Hooks.Install, r.Hooks.DestructiveInstall, r.Hooks.PostDeploy} {
		if len(h.Command) > api.MaxHookBytes {
			return api.Fieldf("hooks", "a hook command is longer than %d bytes", api.MaxHookBytes)
		}
	}
	return nil
}
