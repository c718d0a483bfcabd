package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
)

// savedSpec is what the state keeps (sealed) of a supervised instance, so that
// a serve that restarted, or a host that rebooted, restarts crashed instances
// exactly as the serve that started them would have.
type savedSpec struct {
	Spec    driver.Spec       `json:"spec"`
	Inst    driver.Instance   `json:"instance"`
	Service string            `json:"service"`
	Store   string            `json:"store"`
	Health  proxy.HealthCheck `json:"health"`
}

// persist records r's spec; a failure is logged, not fatal: the instance runs
// and is supervised by this process either way.
func (d *Deployer) persist(ctx context.Context, r *supervised) {
	if d.State == nil {
		return
	}
	b, err := json.Marshal(savedSpec{Spec: r.spec, Inst: r.inst, Service: r.service, Store: r.store, Health: r.health})
	if err == nil {
		err = d.State.SaveSpec(context.WithoutCancel(ctx), r.inst.ID, r.store, b)
	}
	if err != nil && d.Log != nil {
		d.Log.Warn("supervisor: recording an instance's spec (it will not be restarted after a serve restart)", "instance", r.inst.Name, "error", err)
	}
}

// persistProcess records a non-web instance's spec the same way: its role
// label tells Restore it goes back to the process supervisor.
func (d *Deployer) persistProcess(ctx context.Context, r *supervisedProc) {
	d.persist(ctx, &supervised{spec: r.spec, inst: r.inst, store: r.store})
}

func (d *Deployer) unpersist(ids ...string) {
	if d.State == nil || len(ids) == 0 {
		return
	}
	if err := d.State.DeleteSpecs(context.Background(), ids...); err != nil && d.Log != nil {
		d.Log.Warn("supervisor: forgetting instance specs", "error", err)
	}
}

// Restore loads the specs that an earlier serve recorded, so that Supervise
// restarts those instances when they crash (or, after a reboot, are gone) as
// long as a route still points at them. Call it after recovery.
func (d *Deployer) Restore(ctx context.Context, log *slog.Logger) error {
	specs, err := d.State.Specs(ctx)
	if err != nil {
		log.Warn("supervisor: some instance specs could not be read", "error", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.supervised == nil {
		d.supervised = map[string]*supervised{}
	}
	saved := map[string]savedSpec{}
	for id, b := range specs {
		var s savedSpec
		if err := json.Unmarshal(b, &s); err != nil {
			log.Warn("supervisor: an instance spec does not parse", "instance", id, "error", err)
			continue
		}
		saved[id] = s
	}
	n := 0
	for id, s := range saved {
		if s.Spec.Labels[driver.LabelRole] == RoleProcess {
			continue
		}
		if _, ok := d.supervised[id]; ok {
			continue
		}
		d.supervised[id] = &supervised{spec: s.Spec, inst: s.Inst, service: s.Service, store: s.Store, health: s.Health, since: time.Now()}
		n++
	}
	p := d.restoreProcesses(saved, log)
	if n > 0 || p > 0 {
		log.Info("supervisor: watching instances an earlier serve started", "instances", n, "processes", p)
	}
	return nil
}

// restoreProcesses hands the saved non-web instances of live releases back to
// the process supervisor (d.mu held), which restarts them when they exit or,
// after a reboot, are gone. A release is live when one of its saved web
// instances is a target of its route; the others' specs are dropped.
func (d *Deployer) restoreProcesses(saved map[string]savedSpec, log *slog.Logger) int {
	routed := map[string]map[string]bool{}
	for _, svc := range d.Router.Services() {
		routed[svc.Name] = map[string]bool{}
		for _, t := range svc.Targets {
			routed[svc.Name][t.Address] = true
		}
	}
	live := map[string]bool{}
	for _, s := range saved {
		if s.Spec.Labels[driver.LabelRole] != RoleProcess && routed[s.Service][s.Inst.Addr] {
			live[s.Spec.Labels[driver.LabelRelease]] = true
		}
	}
	if d.procs == nil {
		d.procs = map[string]*supervisedProc{}
	}
	n := 0
	for id, s := range saved {
		if s.Spec.Labels[driver.LabelRole] != RoleProcess {
			continue
		}
		if !live[s.Spec.Labels[driver.LabelRelease]] {
			log.Info("supervisor: forgetting a process of a release that no longer serves", "instance", s.Inst.Name)
			d.unpersist(id)
			continue
		}
		if _, ok := d.procs[id]; !ok {
			d.procs[id] = &supervisedProc{spec: s.Spec, inst: s.Inst, store: s.Store}
			n++
		}
	}
	return n
}

// watchExits makes the supervisor react to an exit at once instead of at its
// next tick, where the driver can wait for an instance.
func (d *Deployer) watchExits(ctx context.Context, recs []*supervised, kick chan<- struct{}) {
	w, ok := d.Driver.(driver.Waiter)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watched == nil {
		d.watched = map[string]bool{}
	}
	for _, r := range recs {
		id := r.inst.ID
		if d.watched[id] {
			continue
		}
		d.watched[id] = true
		go func() {
			w.Wait(ctx, id)
			select {
			case kick <- struct{}{}:
			default:
			}
		}()
	}
}
