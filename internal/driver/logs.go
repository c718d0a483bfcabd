package driver

import (
	"context"
	"time"
)

// LogLine is one line of an instance's output with the time it was written.
type LogLine struct {
	Time time.Time
	Text string
}

// TimedLogger reads an instance's output line by line with the time each
// line was written, for interleaving several instances (slipway logs).
type TimedLogger interface {
	// TimedLogs calls fn for every stored line written after since (all when
	// zero); with follow it goes on with new lines until ctx ends or the
	// instance exits or is stopped.
	TimedLogs(ctx context.Context, id string, since time.Time, follow bool, fn func(LogLine)) error
}
