package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/slipway-dev/slipway/internal/api"
)

// ReportRollout tells serve how a fleet rollout stands (PUT /v1/rollouts/{id}), for the console.
func (c *Client) ReportRollout(ctx context.Context, r api.Rollout) error {
	resp, err := c.do(ctx, http.MethodPut, "/v1/rollouts/"+url.PathEscape(r.ID), r)
	if err != nil {
		return fmt.Errorf("reporting rollout %s: %w", r.ID, err)
	}
	resp.Body.Close()
	return nil
}

// Rollouts lists the rollouts serve was told about, newest first.
func (c *Client) Rollouts(ctx context.Context) ([]api.Rollout, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/rollouts", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []api.Rollout
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("reading the rollouts: %w", err)
	}
	return out, nil
}
