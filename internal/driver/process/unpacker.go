package process

import (
	"context"
	"fmt"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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

var _ driver.ProcessChecker = (*Driver)(nil)

// HasProcess reads the image's config (from its unpacked copy, else the
// manifest and config blob only) and says whether it runs anything. The
// answer is kept per digest: a digest's config never changes.
func (d *Driver) HasProcess(ctx context.Context, im driver.Image) (bool, error) {
	digest, err := refDigest(im.Ref)
	if err != nil {
		return false, err
	}
	if v, ok := d.hasProcess.Load(digest); ok {
		return v.(bool), nil
	}
	var cfg v1.Config
	if u, err := loadUnpacked(digest, filepath.Join(d.imagesDir(), imageDirName(digest))); err == nil {
		cfg = u.config
	} else {
		img, err := d.fetch(ctx, im)
		if err != nil {
			return false, fmt.Errorf("fetching %s: %w", im.Ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return false, fmt.Errorf("reading the config of %s: %w", im.Ref, err)
		}
		cfg = cf.Config
	}
	runs := len(cfg.Entrypoint)+len(cfg.Cmd) > 0
	d.hasProcess.Store(digest, runs)
	return runs, nil
}
