package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DeployRequest asks the router to make Targets the active set of Service.
type DeployRequest struct {
	// Service names the app, e.g. "us/storefront-unified-nextjs".
	Service string
	// Hosts replaces the service's host names (exact, or "*.example.com"
	// wildcards matching any deeper name). Empty keeps the current ones; a
	// new service needs at least one (see LocalHost).
	Hosts []string
	// Targets are the new instances, "127.0.0.1:3000". Empty takes the
	// service offline: its hosts answer 503 until the next deploy.
	Targets []string
	// Health gates the swap; zero fields take HealthCheck's defaults.
	Health HealthCheck
	// DrainTimeout bounds how long replaced targets may finish in-flight
	// requests before what remains is closed. Default: the router's (30s).
	DrainTimeout time.Duration
}

// DeployResult reports a deploy that swapped.
type DeployResult struct {
	Service string   `json:"service"`
	Active  []string `json:"active"`
	// Old are the replaced targets, drained when Deploy returns: the caller
	// may stop them. Targets in both the old and the new set are in Active
	// only and were not drained.
	Old       []string      `json:"old"`
	SwappedAt time.Time     `json:"swapped_at"`
	GateTook  time.Duration `json:"gate_took"`
	DrainTook time.Duration `json:"drain_took"`
	// Cut counts requests to old targets still running at the drain
	// deadline, which were closed (streams, websockets, very slow requests).
	Cut int `json:"cut"`
}

// Deploy switches a service to a new target set with zero downtime:
//
//  1. health gate: GET Health.Path on every new target each Interval until
//     all answered 2xx/3xx, or Health.Deadline passes, or ctx ends. On
//     failure it returns a *GateError; no request reached a new target and
//     the old ones keep serving.
//  2. swap: the new set becomes active for every new request, in one
//     pointer store under the router lock, after the state file was saved.
//  3. drain: replaced targets finish their in-flight requests for up to
//     DrainTimeout; then whatever remains, websockets and streams included,
//     is closed.
//
// Deploys of one service are serialised: a second one waits (as long as
// its ctx allows) for the first to swap, then runs its own gate, so the
// last one called wins. Deploys of different services do not wait for each
// other. Once the swap happened, Deploy waits for the drain whatever ctx
// says, so that when it returns the old targets can always be stopped.
func (r *Router) Deploy(ctx context.Context, req DeployRequest) (DeployResult, error) {
	res := DeployResult{Service: req.Service}
	if err := req.normalize(); err != nil {
		return res, fmt.Errorf("deploying %q: %w", req.Service, err)
	}
	if req.DrainTimeout <= 0 {
		req.DrainTimeout = r.cfg.drainTimeout
	}
	unlock, err := r.lockService(ctx, req.Service)
	if err != nil {
		return res, fmt.Errorf("deploying %q: %w", req.Service, err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()

	// Snapshot the current state; only deploys of this service change it,
	// and we hold its lock.
	r.mu.Lock()
	svc := r.services[req.Service]
	hosts := req.Hosts
	var current []*target
	if svc != nil {
		current = svc.active.Load().targets
		if len(hosts) == 0 {
			hosts = svc.hosts
		}
	}
	err = r.checkHostsLocked(req.Service, hosts)
	r.mu.Unlock()
	if err != nil {
		return res, fmt.Errorf("deploying %q: %w", req.Service, err)
	}

	// Build the new set, keeping target objects already serving so that
	// their in-flight accounting carries over.
	next := &targetSet{}
	var fresh []*target
	for _, addr := range req.Targets {
		i := slices.IndexFunc(current, func(t *target) bool { return t.addr == addr })
		if i >= 0 {
			next.targets = append(next.targets, current[i])
			continue
		}
		t := r.newTarget(addr)
		fresh = append(fresh, t)
		next.targets = append(next.targets, t)
	}
	abandon := func() {
		for _, t := range fresh {
			t.close()
		}
	}

	start := time.Now()
	if len(req.Targets) > 0 {
		r.cfg.log.Info("health gate", "service", req.Service, "targets", req.Targets, "path", req.Health.Path)
		if err := gate(ctx, req.Service, req.Targets, req.Health); err != nil {
			abandon()
			r.cfg.log.Warn("deploy aborted; old targets keep serving", "service", req.Service, "error", err)
			return res, err
		}
	}
	res.GateTook = time.Since(start)

	// The swap. Hosts are checked again: another service may have claimed
	// one while our gate ran.
	r.mu.Lock()
	if err := r.checkHostsLocked(req.Service, hosts); err != nil {
		r.mu.Unlock()
		abandon()
		return res, fmt.Errorf("deploying %q: %w", req.Service, err)
	}
	if err := r.saveLocked(req.Service, &serviceState{Name: req.Service, Hosts: hosts, Targets: req.Targets, Health: req.Health}); err != nil {
		r.mu.Unlock()
		abandon()
		return res, fmt.Errorf("deploying %q: %w", req.Service, err)
	}
	if svc == nil || r.services[req.Service] != svc {
		svc = &service{name: req.Service}
		svc.active.Store(&targetSet{})
		r.services[req.Service] = svc
	}
	svc.hosts = hosts
	svc.health = req.Health
	svc.lastDeploy = time.Now()
	old := svc.active.Swap(next)
	r.rebuildTableLocked()
	r.mu.Unlock()
	res.SwappedAt = time.Now()
	unlock()
	locked = false

	var replaced []*target
	for _, t := range old.targets {
		if !slices.Contains(next.targets, t) {
			replaced = append(replaced, t)
			res.Old = append(res.Old, t.addr)
		}
	}
	res.Active = next.addrs()
	r.cfg.log.Info("swapped", "service", req.Service, "active", res.Active, "draining", res.Old, "gate", res.GateTook)

	res.Cut = r.drainAll(svc, replaced, req.DrainTimeout)
	res.DrainTook = time.Since(res.SwappedAt)
	if len(replaced) > 0 {
		r.cfg.log.Info("drained", "service", req.Service, "old", res.Old, "took", res.DrainTook, "cut", res.Cut)
	}
	return res, nil
}

// normalize validates the request and applies defaults in place.
func (req *DeployRequest) normalize() error {
	if strings.TrimSpace(req.Service) == "" {
		return errors.New("service name is empty")
	}
	var hosts []string
	for _, h := range req.Hosts {
		n, err := normalizeHostPattern(h)
		if err != nil {
			return err
		}
		if !slices.Contains(hosts, n) {
			hosts = append(hosts, n)
		}
	}
	req.Hosts = hosts
	var targets []string
	for _, t := range req.Targets {
		n, err := normalizeTarget(t)
		if err != nil {
			return err
		}
		if !slices.Contains(targets, n) {
			targets = append(targets, n)
		}
	}
	req.Targets = targets
	req.Health = req.Health.withDefaults()
	return nil
}

func (r *Router) checkHostsLocked(name string, hosts []string) error {
	if len(hosts) == 0 {
		return ErrNoHosts
	}
	for _, h := range hosts {
		if owner := r.hostOwnerLocked(name, h); owner != "" {
			return fmt.Errorf("host %q belongs to service %q: %w", h, owner, ErrHostInUse)
		}
	}
	return nil
}
