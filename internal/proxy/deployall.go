package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Cutover moves several services (all apps of one store) to new target sets
// together: one health gate over every new target, then one swap of every
// route under the router lock, then one drain. Either every service swaps or
// none does.
type Cutover struct {
	// Services are deployed together. Each one's DrainTimeout is ignored:
	// the cutover's applies to all.
	Services []DeployRequest
	// Remove names services whose routes go in the same swap (apps the store
	// no longer has); their hosts may be taken by Services. Unknown names are
	// ignored.
	Remove []string
	// DrainTimeout bounds the drain of replaced and removed targets.
	// Default: the router's (30s).
	DrainTimeout time.Duration
	// Swapped, if set, runs right after the swap and before the drain, so the
	// caller records what is live at the moment it became live.
	Swapped func()
}

// CutoverResult reports a cutover that swapped.
type CutoverResult struct {
	// Services, in the order of the request.
	Services []DeployResult `json:"services"`
	// Removed are the services whose routes went.
	Removed   []string      `json:"removed,omitempty"`
	SwappedAt time.Time     `json:"swapped_at"`
	GateTook  time.Duration `json:"gate_took"`
	// SwapTook is the swap alone: every route replaced under the lock, after the gate.
	SwapTook  time.Duration `json:"swap_took"`
	DrainTook time.Duration `json:"drain_took"`
	// Old are the targets replaced or removed, drained when DeployAll
	// returns: the caller may stop them.
	Old []string `json:"old"`
	// Cut counts requests closed at the drain deadline.
	Cut int `json:"cut"`
}

// pending is one service of a cutover between its gate and its swap.
type pending struct {
	req   DeployRequest
	svc   *service
	hosts []string
	next  *targetSet
	fresh []*target
}

// DeployAll runs a cutover (see Cutover). On a gate failure it returns a
// *GateError (joined, one per failing service) and nothing changed. Deploys
// touching any of the same services are serialised, as for Deploy. Once the
// swap happened DeployAll waits for the drain whatever ctx says.
func (r *Router) DeployAll(ctx context.Context, c Cutover) (CutoverResult, error) {
	var res CutoverResult
	if err := c.normalize(); err != nil {
		return res, err
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = r.cfg.drainTimeout
	}
	unlock, err := r.lockServices(ctx, c.names())
	if err != nil {
		return res, fmt.Errorf("deploying %s: %w", c.label(), err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()

	ps, err := r.prepare(c)
	if err != nil {
		return res, err
	}
	abandon := func() {
		for _, p := range ps {
			for _, t := range p.fresh {
				t.close()
			}
		}
		closeStatics(ps)
	}
	start := time.Now()
	indexStatics(ps) // outside the router lock: it reads the sites' files
	if err := r.gateAll(ctx, ps); err != nil {
		abandon()
		r.cfg.log.Warn("deploy aborted; old targets keep serving", "services", c.label(), "error", err)
		return res, err
	}
	res.GateTook = time.Since(start)

	swapStart := time.Now()
	drains, err := r.swap(c, ps, &res)
	if err != nil {
		abandon()
		return res, err
	}
	res.SwappedAt = time.Now()
	res.SwapTook = res.SwappedAt.Sub(swapStart)
	unlock()
	locked = false
	if c.Swapped != nil {
		c.Swapped()
	}
	r.cfg.log.Info("swapped", "services", c.label(), "draining", res.Old, "gate", res.GateTook)

	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, d := range drains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := r.drainAll(d.svc, d.targets, c.DrainTimeout)
			if d.static != nil {
				d.static.drain(c.DrainTimeout)
			}
			mu.Lock()
			res.Cut += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.DrainTook = time.Since(res.SwappedAt)
	for i := range res.Services {
		res.Services[i].SwappedAt, res.Services[i].GateTook, res.Services[i].DrainTook = res.SwappedAt, res.GateTook, res.DrainTook
	}
	if len(res.Old) > 0 {
		r.cfg.log.Info("drained", "services", c.label(), "old", res.Old, "took", res.DrainTook, "cut", res.Cut)
	}
	return res, nil
}

// normalize validates every request and drops duplicate removals.
func (c *Cutover) normalize() error {
	if len(c.Services) == 0 && len(c.Remove) == 0 {
		return errors.New("deploying: no services")
	}
	seen := map[string]bool{}
	for i := range c.Services {
		if err := c.Services[i].normalize(); err != nil {
			return fmt.Errorf("deploying %q: %w", c.Services[i].Service, err)
		}
		if seen[c.Services[i].Service] {
			return fmt.Errorf("deploying %q: listed twice", c.Services[i].Service)
		}
		seen[c.Services[i].Service] = true
	}
	var rm []string
	for _, n := range c.Remove {
		if !seen[n] && !slices.Contains(rm, n) {
			rm = append(rm, n)
		}
	}
	c.Remove = rm
	return nil
}

// names lists every service the cutover touches, sorted, so that locks are
// always taken in the same order.
func (c *Cutover) names() []string {
	var out []string
	for _, s := range c.Services {
		out = append(out, s.Service)
	}
	out = append(out, c.Remove...)
	sort.Strings(out)
	return out
}

func (c *Cutover) label() string {
	var out []string
	for _, s := range c.Services {
		out = append(out, s.Service)
	}
	if len(out) == 1 {
		return fmt.Sprintf("%q", out[0])
	}
	return fmt.Sprintf("%q", out)
}

// lockServices takes the deploy locks of names, in order.
func (r *Router) lockServices(ctx context.Context, names []string) (func(), error) {
	var unlocks []func()
	release := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, n := range names {
		u, err := r.lockService(ctx, n)
		if err != nil {
			release()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return release, nil
}

// prepare snapshots each service and builds its new target set, keeping
// target objects already serving so that their in-flight accounting carries
// over. We hold the services' locks, so only we change them.
func (r *Router) prepare(c Cutover) ([]*pending, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []*pending
	for _, req := range c.Services {
		p := &pending{req: req, svc: r.services[req.Service], hosts: req.Hosts, next: &targetSet{}}
		var current []*target
		if p.svc != nil {
			current = p.svc.active.Load().targets
			if len(p.hosts) == 0 {
				p.hosts = p.svc.hosts
			}
		}
		if len(req.Targets) == 0 && req.Static == nil {
			p.next.maintenance = req.Maintenance
		}
		if err := r.prepareStatic(p); err != nil {
			closeStatics(ps)
			return nil, err
		}
		for _, addr := range req.Targets {
			if i := slices.IndexFunc(current, func(t *target) bool { return t.addr == addr }); i >= 0 {
				p.next.targets = append(p.next.targets, current[i])
				continue
			}
			t := r.newTarget(addr)
			p.fresh = append(p.fresh, t)
			p.next.targets = append(p.next.targets, t)
		}
		ps = append(ps, p)
	}
	if err := r.checkCutoverHostsLocked(c, ps); err != nil {
		closeStatics(ps)
		return nil, err
	}
	return ps, nil
}

// checkCutoverHostsLocked refuses a host another service routes, unless that
// service is part of the cutover, and a host two services of it claim.
func (r *Router) checkCutoverHostsLocked(c Cutover, ps []*pending) error {
	mine := map[string]bool{}
	for _, n := range c.names() {
		mine[n] = true
	}
	claimed := map[string]string{}
	for _, p := range ps {
		if len(p.hosts) == 0 {
			return fmt.Errorf("deploying %q: %w", p.req.Service, ErrNoHosts)
		}
		for _, h := range p.hosts {
			if other, ok := claimed[h]; ok {
				return fmt.Errorf("deploying %q: host %q is also claimed by %q: %w", p.req.Service, h, other, ErrHostInUse)
			}
			claimed[h] = p.req.Service
			for _, s := range r.services {
				if !mine[s.name] && slices.Contains(s.hosts, h) {
					return fmt.Errorf("deploying %q: host %q belongs to service %q: %w", p.req.Service, h, s.name, ErrHostInUse)
				}
			}
		}
	}
	return nil
}

// gateAll gates every fresh target of every service at once. Targets kept
// from the current set already serve and are not gated again.
func (r *Router) gateAll(ctx context.Context, ps []*pending) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		if len(p.fresh) == 0 {
			continue
		}
		addrs := make([]string, len(p.fresh))
		for j, t := range p.fresh {
			addrs[j] = t.addr
		}
		r.cfg.log.Info("health gate", "service", p.req.Service, "targets", addrs, "path", p.req.Health.Path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = gate(ctx, p.req.Service, addrs, p.req.Health)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

type drainJob struct {
	svc     *service
	targets []*target
	static  *staticSite // the replaced release's files, closed after the drain
}

// swap saves the new state and publishes every new set and the new host
// table under the router lock. Hosts are checked again: another service may
// have claimed one while the gate ran.
func (r *Router) swap(c Cutover, ps []*pending, res *CutoverResult) ([]drainJob, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkCutoverHostsLocked(c, ps); err != nil {
		return nil, err
	}
	changes := map[string]*serviceState{}
	for _, p := range ps {
		changes[p.req.Service] = &serviceState{Name: p.req.Service, Hosts: p.hosts, Targets: p.next.addrs(), Health: p.req.Health, Maintenance: p.req.Maintenance, Static: p.next.staticSpec()}
	}
	for _, n := range c.Remove {
		if r.services[n] != nil {
			changes[n] = nil
		}
	}
	if err := r.saveChangesLocked(changes); err != nil {
		return nil, fmt.Errorf("deploying %s: %w", c.label(), err)
	}
	var drains []drainJob
	now := time.Now()
	for _, p := range ps {
		svc := r.services[p.req.Service]
		if svc == nil {
			svc = &service{name: p.req.Service}
			svc.active.Store(&targetSet{})
			r.services[p.req.Service] = svc
		}
		svc.hosts, svc.health, svc.lastDeploy = p.hosts, p.req.Health, now
		old := svc.active.Swap(p.next)
		dr := DeployResult{Service: p.req.Service, Active: p.next.addrs()}
		var replaced []*target
		for _, t := range old.targets {
			if !slices.Contains(p.next.targets, t) {
				replaced = append(replaced, t)
				dr.Old = append(dr.Old, t.addr)
			}
		}
		res.Old = append(res.Old, dr.Old...)
		res.Services = append(res.Services, dr)
		drains = append(drains, drainJob{svc, replaced, replacedStatic(old, p.next)})
	}
	for _, n := range c.Remove {
		svc := r.services[n]
		if svc == nil {
			continue
		}
		delete(r.services, n)
		old := svc.active.Load()
		res.Removed = append(res.Removed, n)
		res.Old = append(res.Old, old.addrs()...)
		drains = append(drains, drainJob{svc, old.targets, old.static})
	}
	r.rebuildTableLocked()
	return drains, nil
}
