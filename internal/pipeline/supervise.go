package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

// Restart backoff for crashed instances.
const (
	restartMin = time.Second
	restartMax = 30 * time.Second
	// restartReset: an instance that ran this long without crashing starts its backoff over.
	restartReset = time.Minute
)

// supervised is what the Deployer remembers of an instance it started, to
// restart it the same way (secrets included: this lives in memory only).
type supervised struct {
	spec    driver.Spec
	inst    driver.Instance
	service string
	store   string
	health  proxy.HealthCheck
	// restarts counts crashes in a row; next is when the next restart may run.
	restarts int
	next     time.Time
	since    time.Time
}

func (d *Deployer) remember(sa *startedApp, req DeployRequest, specs []driver.Spec) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.supervised == nil {
		d.supervised = map[string]*supervised{}
	}
	for i, in := range sa.instances {
		r := &supervised{spec: specs[i], inst: in, service: service(req.Store, sa.app.App), store: req.Store, health: sa.app.Health, since: time.Now()}
		d.supervised[in.ID] = r
		d.persist(context.Background(), r)
	}
}

func (d *Deployer) forget(ids ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.supervised, id)
		delete(d.watched, id)
		delete(d.procs, id) // stopped with the store's others: not to be restarted
	}
	d.unpersist(ids...)
}

// Supervise restarts crashed instances that still serve a route, with
// exponential backoff, until ctx ends. Instances an earlier serve started are
// restarted too (Restore loads their sealed specs), and so are instances a
// reboot took away. A runtime that restarts crashed instances itself (docker's
// restart policy) is left to do so: only instances it lost are started again.
func (d *Deployer) Supervise(ctx context.Context, log *slog.Logger, every time.Duration) {
	schedDone := make(chan struct{})
	go func() { d.RunSchedules(ctx, log, time.Second); close(schedDone) }()
	defer func() { <-schedDone }()
	t := time.NewTicker(every)
	defer t.Stop()
	kick := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		if d.PendingRecords() > 0 {
			d.retryPending(ctx, log)
		}
		d.watchExits(ctx, d.superviseOnce(ctx, log), kick)
	}
}

// superviseOnce restarts what needs it and returns the instances it watches.
func (d *Deployer) superviseOnce(ctx context.Context, log *slog.Logger) []*supervised {
	d.superviseProcesses(ctx, log)
	d.mu.Lock()
	recs := make([]*supervised, 0, len(d.supervised))
	for _, r := range d.supervised {
		recs = append(recs, r)
	}
	d.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	insts, err := d.Driver.List(ctx, map[string]string{driver.LabelManaged: "true", driver.LabelRole: "web"})
	if err != nil {
		log.Warn("supervisor: listing instances", "error", err)
		return recs
	}
	selfRestart := d.Driver.Capabilities().Restart
	running := map[string]bool{}
	for _, in := range insts {
		// A runtime with its own restart policy brings back what it still has.
		if in.State == "running" || selfRestart {
			running[in.ID] = true
		}
	}
	active := map[string][]string{}
	for _, s := range d.Router.Services() {
		for _, t := range s.Targets {
			active[s.Name] = append(active[s.Name], t.Address)
		}
	}
	now := time.Now()
	for _, r := range recs {
		if running[r.inst.ID] {
			if r.restarts > 0 && now.Sub(r.since) > restartReset {
				r.restarts = 0
			}
			continue
		}
		if !slices.Contains(active[r.service], r.inst.Addr) {
			d.forget(r.inst.ID) // replaced by a deploy: not ours to restart
			continue
		}
		if now.Before(r.next) {
			continue
		}
		if err := d.restart(ctx, r, active[r.service], log); err != nil {
			r.restarts++
			backoff := min(restartMax, restartMin<<min(r.restarts, 5))
			r.next = now.Add(backoff)
			log.Warn("supervisor: restart failed", "service", r.service, "instance", r.inst.Name, "error", err, "retry_in", backoff)
		}
	}
	return recs
}

// restart replaces a crashed instance: start a new one with the same spec, gate
// it, swap it into the route in place of the dead one, clean the dead one up.
func (d *Deployer) restart(ctx context.Context, r *supervised, targets []string, log *slog.Logger) error {
	lock, err := d.State.Acquire(ctx, r.store, state.LockOptions{})
	if errors.Is(err, state.ErrLocked) {
		return nil // a deploy is running; it decides what serves
	}
	if err != nil {
		return err
	}
	defer lock.Release()
	// Re-read the route now that deploys are excluded: one may have finished
	// since the snapshot, and then this instance is no longer ours to restart.
	targets = nil
	for _, s := range d.Router.Services() {
		if s.Name == r.service {
			for _, t := range s.Targets {
				targets = append(targets, t.Address)
			}
		}
	}
	d.mu.Lock()
	_, still := d.supervised[r.inst.ID]
	d.mu.Unlock()
	if !still || !slices.Contains(targets, r.inst.Addr) {
		d.forget(r.inst.ID)
		return nil
	}
	log.Warn("supervisor: instance exited; restarting", "service", r.service, "instance", r.inst.Name, "crashes", r.restarts+1)
	in, err := d.Driver.Start(ctx, r.spec)
	if err != nil {
		return err
	}
	next := make([]string, 0, len(targets))
	for _, t := range targets {
		if t == r.inst.Addr {
			t = in.Addr
		}
		next = append(next, t)
	}
	// Deploy gates the new instance (the others already serve) before it gets traffic.
	if _, err := d.Router.Deploy(ctx, proxy.DeployRequest{Service: r.service, Targets: next, Health: r.health, DrainTimeout: time.Second}); err != nil {
		d.Driver.Stop(context.WithoutCancel(ctx), in.ID)
		return err
	}
	d.Driver.Stop(context.WithoutCancel(ctx), r.inst.ID)
	d.mu.Lock()
	old := r.inst.ID
	delete(d.supervised, old)
	delete(d.watched, old)
	r.inst, r.since = in, time.Now()
	r.restarts++
	r.next = time.Now().Add(min(restartMax, restartMin<<min(r.restarts, 5)))
	d.supervised[in.ID] = r
	d.mu.Unlock()
	d.persist(ctx, r)
	d.unpersist(old)
	log.Info("supervisor: instance restarted", "service", r.service, "instance", in.Name, "addr", in.Addr)
	return nil
}
