package api

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Rollout is a fleet rollout (`deploy --all --wave`) as the CLI running it
// reports it to serve (PUT /v1/rollouts/{id}) after each step, so the
// console can show which stores are in which wave and how each one went.
type Rollout struct {
	ID string `json:"id"`
	// Status is RolloutRunning until the CLI reports the end.
	Status    string        `json:"status"`
	Waves     []RolloutWave `json:"waves"`
	Note      string        `json:"note,omitempty"`
	StartedAt time.Time     `json:"startedAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
	Who       string        `json:"who,omitempty"`
}

// RolloutWave is one wave and its stores.
type RolloutWave struct {
	Name   string         `json:"name"`
	Canary bool           `json:"canary,omitempty"`
	Stores []RolloutStore `json:"stores"`
}

// RolloutStore is one store's state in a rollout.
type RolloutStore struct {
	Store   string `json:"store"`
	Status  string `json:"status"`
	Release string `json:"release,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Rollout statuses (a rollout's and a store's).
const (
	RolloutRunning     = "running"
	RolloutDone        = "done"
	RolloutStopped     = "stopped"
	RolloutWaiting     = "waiting"
	RolloutDeploying   = "deploying"
	RolloutLive        = "live"
	RolloutFailed      = "failed"
	RolloutNotDeployed = "not-deployed"
	RolloutRolledBack  = "rolled-back"
)

var (
	rolloutStatuses = []string{RolloutRunning, RolloutDone, RolloutStopped}
	storeStatuses   = []string{RolloutWaiting, RolloutDeploying, RolloutLive, RolloutFailed, RolloutNotDeployed, RolloutRolledBack}
	rolloutIDRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	rolloutStoreRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// Limits of a reported rollout.
const (
	MaxRolloutWaves  = 1000
	MaxRolloutStores = 10000
)

// Validate checks a reported rollout; errors name the field.
func (r *Rollout) Validate() error {
	if !rolloutIDRe.MatchString(r.ID) {
		return fmt.Errorf("id: %q is not a rollout id (letters, digits, . _ -; at most 64)", r.ID)
	}
	if !slices.Contains(rolloutStatuses, r.Status) {
		return fmt.Errorf("status: %q is not one of %v", r.Status, rolloutStatuses)
	}
	if len(r.Waves) == 0 || len(r.Waves) > MaxRolloutWaves {
		return fmt.Errorf("waves: want 1 to %d, got %d", MaxRolloutWaves, len(r.Waves))
	}
	n := 0
	for i, w := range r.Waves {
		if w.Name == "" || len(w.Name) > 64 {
			return fmt.Errorf("waves[%d].name: want 1 to 64 characters", i)
		}
		for j, s := range w.Stores {
			n++
			if !rolloutStoreRe.MatchString(s.Store) {
				return fmt.Errorf("waves[%d].stores[%d].store: %q is not a store id", i, j, s.Store)
			}
			if !slices.Contains(storeStatuses, s.Status) {
				return fmt.Errorf("waves[%d].stores[%d].status: %q is not one of %v", i, j, s.Status, storeStatuses)
			}
			if len(s.Error) > 2000 || len(s.Release) > 200 {
				return fmt.Errorf("waves[%d].stores[%d]: error or release too long", i, j)
			}
		}
	}
	if n > MaxRolloutStores {
		return fmt.Errorf("waves: %d stores, at most %d", n, MaxRolloutStores)
	}
	if len(r.Note) > 2000 {
		return fmt.Errorf("note: at most 2000 characters")
	}
	return nil
}
