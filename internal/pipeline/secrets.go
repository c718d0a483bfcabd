package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// SecretSource gives the secrets serve keeps for a store (`slipway secrets set`).
type SecretSource func(ctx context.Context, store string) (map[string]string, error)

// withStoredSecrets adds the store's stored secrets to req: a value the caller
// sent wins; each stored one is marked secret (redacted, hashed as "(secret)").
func (d *Deployer) withStoredSecrets(ctx context.Context, req DeployRequest) (DeployRequest, error) {
	if d.Secrets == nil {
		return req, nil
	}
	stored, err := d.Secrets(ctx, req.Store)
	if err != nil {
		return req, fmt.Errorf("reading the stored secrets of %s: %w", req.Store, err)
	}
	if len(stored) == 0 {
		return req, nil
	}
	req.Env = maps.Clone(req.Env)
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	req.Secrets = slices.Clone(req.Secrets)
	for _, k := range slices.Sorted(maps.Keys(stored)) {
		if slices.Contains(req.Secrets, k) {
			continue // sent with the request: that value wins
		}
		req.Env[k] = stored[k]
		req.Secrets = append(req.Secrets, k)
	}
	return req, nil
}
