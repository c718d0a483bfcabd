package process

import (
	"context"

	"github.com/slipway-dev/slipway/internal/driver"
)

var _ driver.Unpacker = (*Driver)(nil)

// Unpack unpacks the image once per digest (the same files Start runs) and
// returns where. Prune keeps them while a recent release uses the digest.
func (d *Driver) Unpack(ctx context.Context, im driver.Image) (driver.Unpacked, error) {
	u, release, err := d.acquire(ctx, im)
	if err != nil {
		return driver.Unpacked{}, err
	}
	defer release()
	return driver.Unpacked{Root: u.rootfs, WorkDir: u.config.WorkingDir, Entrypoint: u.config.Entrypoint, Cmd: u.config.Cmd}, nil
}
