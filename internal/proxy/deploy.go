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
	// Maintenance, with no Targets, is the message of the 503 page the
	// service's hosts answer (slipway stop); empty gives the default page.
	Maintenance string
	// Static, instead of Targets, serves a release's files from disk (see
	// StaticSite); the gate checks the directory holds a site.
	Static *StaticSite
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
	res, err := r.DeployAll(ctx, Cutover{Services: []DeployRequest{req}, DrainTimeout: req.DrainTimeout})
	if err != nil {
		return DeployResult{Service: req.Service}, err
	}
	out := res.Services[0]
	out.Cut = res.Cut
	return out, nil
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
