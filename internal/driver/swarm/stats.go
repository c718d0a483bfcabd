package swarm

import (
	"context"
	"errors"
	"fmt"

	"github.com/moby/moby/api/types/swarm"

	"github.com/slipway-dev/slipway/internal/driver"
)

var _ driver.StatsReader = (*Driver)(nil)

// errNoLocalTask: none of the service's running tasks is on the engine this
// driver talks to, and other nodes' engines are not reachable from here.
var errNoLocalTask = errors.New("no running task on this node")

// Stats sums the memory of the service's running tasks whose containers run
// on the engine this driver talks to (the manager serve uses); tasks on
// other nodes are left out, since their engines are not reachable from
// here. With none on this node it fails, and `ps` shows no memory.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	tasks, err := d.tasks(ctx, id)
	if isNotFound(err) {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	self := d.localNodeID(ctx)
	var sum driver.Stats
	n := 0
	for _, t := range tasks {
		cs := t.Status.ContainerStatus
		if t.Status.State != swarm.TaskStateRunning || cs == nil || cs.ContainerID == "" || self == "" || t.NodeID != self {
			continue
		}
		s, err := d.dd.Stats(ctx, cs.ContainerID)
		if err != nil {
			continue // gone meanwhile
		}
		sum.MemoryBytes += s.MemoryBytes
		n++
	}
	if n == 0 {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, errNoLocalTask)
	}
	return sum, nil
}
