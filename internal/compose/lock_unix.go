//go:build linux || darwin

package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockOut takes an exclusive lock on the out dir, so that two composes (two
// slipway commands in parallel) never clean up or rename each other's staging areas.
func (c *Composer) lockOut(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(c.stateDir(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.stateDir(), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another slipway composing into %s: %w", c.out, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
