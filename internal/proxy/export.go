package proxy

import "context"

// Gate runs the health gate Deploy runs, without swapping anything: it
// returns nil once every address answered h.Path with 2xx/3xx, or a
// *GateError. A caller deploying several services together gates them all
// first, so that either every service swaps or none does.
func Gate(ctx context.Context, service string, addrs []string, h HealthCheck) error {
	return gate(ctx, service, addrs, h.withDefaults())
}
