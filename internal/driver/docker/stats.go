package docker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
)

var _ driver.StatsReader = (*Driver)(nil)

// Stats reads one sample of the container's memory use from the engine
// (no previous sample, so it answers at once). Page cache is left out, as
// `docker stats` does.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	res, err := d.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if isNotFound(err) {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	used := s.MemoryStats.Usage
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < used {
			used -= v
			break
		}
	}
	return driver.Stats{MemoryBytes: int64(used)}, nil
}
