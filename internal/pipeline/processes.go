package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
)

// RoleProcess labels the instances of an app's non-web process types.
const RoleProcess = "process"

// LabelProcess names an instance's process type.
const LabelProcess = "dev.slipway.process"

// ProcessImage is a non-web process type of a built app: the app's image
// with the process's command as its entrypoint (same layers, own config).
type ProcessImage struct {
	Name      string `json:"name"`
	Command   string `json:"command"`
	Instances int    `json:"instances,omitempty"`
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	DriverRef string `json:"driverRef"`
}

// Process is a non-web process type to run in a deploy.
type Process struct {
	Name      string       `json:"name"`
	Command   string       `json:"command"`
	Instances int          `json:"instances,omitempty"`
	Image     driver.Image `json:"image"`
}

// procPlan is what an app's config and Procfile say about its processes.
type procPlan struct {
	web     string // command replacing the entrypoint, "" = keep it
	webN    int
	release string // the install hook's command when no hook is configured
	others  []ProcessImage
}

// planProcesses merges the config's processes with the composed app's
// Procfile; the config wins for a name both define. release: becomes the
// install hook, as on Heroku.
func planProcesses(dir string, app *config.App) (*procPlan, error) {
	entries, err := build.ReadProcfile(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", app.Path, err)
	}
	specs := map[string]config.ProcessSpec{}
	for _, e := range entries {
		specs[e.Name] = config.ProcessSpec{Command: e.Command}
	}
	for n, s := range app.Processes {
		if s != nil {
			specs[n] = *s
		}
	}
	p := &procPlan{}
	for _, n := range slices.Sorted(maps.Keys(specs)) {
		s := specs[n]
		switch n {
		case "web":
			p.web, p.webN = s.Command, s.Instances
		case "release":
			p.release = s.Command
		default:
			if s.Command == "" {
				return nil, fmt.Errorf("app %s: process %q has no command", app.ID, n)
			}
			p.others = append(p.others, ProcessImage{Name: n, Command: s.Command, Instances: max(1, s.Instances)})
		}
	}
	return p, nil
}

// webEntrypoint is the Procfile/config web command as an entrypoint.
func (p *procPlan) webEntrypoint() []string {
	if p.web == "" {
		return nil
	}
	return []string{"/bin/sh", "-c", p.web}
}

// processImage derives a process type's image from the app's: the command
// replaces the main process (after the entrypoint callback, when the image
// runs one first).
func processImage(img v1.Image, proc ProcessImage) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	ep := []string{"/bin/sh", "-c", proc.Command}
	if old := cf.Config.Entrypoint; len(old) >= 4 && old[3] == "slipway-entrypoint" {
		ep = append(slices.Clone(old[:4]), ep...)
	}
	cf.Config.Entrypoint, cf.Config.Cmd = ep, nil
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels[LabelProcess] = proc.Name
	return mutate.ConfigFile(img, cf)
}

// publishProcesses publishes each non-web process's image as <tag>-<name>.
func publishProcesses(ctx context.Context, store ImageStore, repo name.Repository, tag string, img v1.Image, procs []ProcessImage) ([]ProcessImage, error) {
	var out []ProcessImage
	for _, p := range procs {
		pimg, err := processImage(img, p)
		if err != nil {
			return nil, fmt.Errorf("process %s: %w", p.Name, err)
		}
		ref := repo.Tag(tag + "-" + p.Name)
		dig, err := store.Publish(ctx, ref, pimg)
		if err != nil {
			return nil, fmt.Errorf("publishing process %s: %w", p.Name, err)
		}
		p.Ref, p.Digest, p.DriverRef = ref.String(), dig.DigestStr(), store.DriverRef(dig)
		out = append(out, p)
	}
	return out, nil
}

// startProcesses starts the new release's non-web processes, after its web
// instances are live. A process that fails to start is reported, and the
// release stays live: its web serves.
func (d *Deployer) startProcesses(ctx context.Context, relID string, req DeployRequest, say func(string, string, ...any)) error {
	var errs []error
	for _, a := range req.Apps {
		for _, p := range a.Processes {
			for i := range max(1, p.Instances) {
				labels := driver.ManagedLabels(req.Project, req.Store, a.App, relID, RoleProcess)
				labels[LabelProcess] = p.Name
				spec := driver.Spec{Image: p.Image, Name: fmt.Sprintf("%s-%s-%s-%s-%s-%d", req.Project, req.Store, a.App, p.Name, relID, i+1),
					Env: instanceEnv(req, a, relID), Port: a.Port, DataKey: dataKey(req), Labels: labels}
				in, err := d.Driver.Start(ctx, spec)
				if err != nil {
					errs = append(errs, fmt.Errorf("starting %s %s: %w", a.App, p.Name, err))
					continue
				}
				d.rememberProcess(in, spec, req.Store)
				say(StageDeploy, "started %s %s (%s)", a.App, p.Name, in.Name)
			}
		}
	}
	return errors.Join(errs...)
}

// stopOldProcesses stops the store's non-web processes of other releases:
// the driver sends SIGTERM and waits their stop timeout.
func (d *Deployer) stopOldProcesses(ctx context.Context, req DeployRequest, relID string, say func(string, string, ...any)) {
	insts, err := d.Driver.List(ctx, map[string]string{driver.LabelProject: req.Project, driver.LabelStore: req.Store, driver.LabelRole: RoleProcess})
	if err != nil {
		say(StageDeploy, "listing old processes: %v", err)
		return
	}
	n := 0
	for _, in := range insts {
		if in.Labels[driver.LabelRelease] == relID {
			continue
		}
		d.forgetProcess(in.ID)
		if err := d.Driver.Stop(ctx, in.ID); err != nil {
			say(StageDeploy, "stopping %s: %v", in.Name, err)
			continue
		}
		n++
	}
	if n > 0 {
		say(StageDeploy, "stopped %d old process instance(s)", n)
	}
}

// supervisedProc is a non-web instance this Deployer restarts when it exits.
type supervisedProc struct {
	spec     driver.Spec
	inst     driver.Instance
	store    string
	restarts int
	next     time.Time
}

func (d *Deployer) rememberProcess(in driver.Instance, spec driver.Spec, store string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.procs == nil {
		d.procs = map[string]*supervisedProc{}
	}
	r := &supervisedProc{spec: spec, inst: in, store: store}
	d.procs[in.ID] = r
	d.persistProcess(context.Background(), r)
}

func (d *Deployer) forgetProcess(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.procs, id)
	d.unpersist(id)
}

// superviseProcesses restarts exited non-web instances of live releases
// with exponential backoff (they have no route, so no gate).
func (d *Deployer) superviseProcesses(ctx context.Context, log *slog.Logger) {
	if d.Driver.Capabilities().Restart {
		return // the runtime restarts them itself (docker restart policy)
	}
	d.mu.Lock()
	recs := slices.Collect(maps.Values(d.procs))
	d.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	insts, err := d.Driver.List(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelRole: RoleProcess})
	if err != nil {
		log.Warn("supervisor: listing processes", "error", err)
		return
	}
	running := map[string]bool{}
	for _, in := range insts {
		running[in.ID] = in.State == "running"
	}
	now := time.Now()
	for _, r := range recs {
		if running[r.inst.ID] || now.Before(r.next) {
			continue
		}
		d.mu.Lock()
		_, still := d.procs[r.inst.ID]
		d.mu.Unlock()
		if !still {
			continue // stopped by a deploy meanwhile
		}
		log.Warn("supervisor: process exited; restarting", "instance", r.inst.Name, "crashes", r.restarts+1)
		in, err := d.Driver.Start(ctx, r.spec)
		r.restarts++
		r.next = now.Add(min(restartMax, restartMin<<min(r.restarts, 5)))
		if err != nil {
			log.Warn("supervisor: restart failed", "instance", r.inst.Name, "error", err)
			continue
		}
		d.Driver.Stop(context.WithoutCancel(ctx), r.inst.ID)
		d.mu.Lock()
		if _, still := d.procs[r.inst.ID]; still {
			old := r.inst.ID
			delete(d.procs, old)
			r.inst = in
			d.procs[in.ID] = r
			d.persistProcess(ctx, r)
			d.unpersist(old)
		} else {
			d.mu.Unlock()
			d.Driver.Stop(context.WithoutCancel(ctx), in.ID)
			continue
		}
		d.mu.Unlock()
	}
}
