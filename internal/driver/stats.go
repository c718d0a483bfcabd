package driver

import "context"

// Stats is what an instance uses of the host.
type Stats struct {
	// MemoryBytes is its resident memory, children included where the runtime can tell.
	MemoryBytes int64 `json:"memoryBytes"`
}

// StatsReader reports an instance's resource use (slipway ps).
type StatsReader interface {
	Stats(ctx context.Context, id string) (Stats, error)
}
