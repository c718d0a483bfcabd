package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/imageref"
)

// unpacked is an image ready to run: its root filesystem on disk and its config.
type unpacked struct {
	digest string // sha256:<hex>, the manifest digest of the reference
	dir    string // <dataDir>/images/sha256-<hex>
	rootfs string // dir/rootfs
	config v1.Config
}

func (d *Driver) imagesDir() string { return filepath.Join(d.dir, "images") }

// imageDirName is the cache directory name for a digest; no ':' so that
// paths under it can go into PATH.
func imageDirName(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// refDigest returns the sha256:<hex> digest a reference pins.
func refDigest(ref string) (string, error) {
	i := strings.LastIndex(ref, "@")
	if i < 0 {
		return "", fmt.Errorf("image reference %q has no @sha256: digest; the process runtime fetches by digest only", ref)
	}
	h, err := v1.NewHash(ref[i+1:])
	if err != nil || h.Algorithm != "sha256" {
		return "", fmt.Errorf("image reference %q: bad digest %q", ref, ref[i+1:])
	}
	return h.String(), nil
}

// acquire returns the image unpacked, fetching and unpacking it on first use
// of its digest. The caller must call release when it no longer needs the
// files on disk to stay (after the instance's record is written, or when a
// hook ends); until then Prune leaves them alone.
func (d *Driver) acquire(ctx context.Context, im driver.Image) (u *unpacked, release func(), err error) {
	digest, err := refDigest(im.Ref)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	d.inUse[digest]++
	lock := d.unpackLocks[digest]
	if lock == nil {
		lock = &sync.Mutex{}
		d.unpackLocks[digest] = lock
	}
	d.mu.Unlock()
	rel := func() {
		d.mu.Lock()
		if d.inUse[digest]--; d.inUse[digest] <= 0 {
			delete(d.inUse, digest)
		}
		d.mu.Unlock()
	}
	defer func() {
		if err != nil {
			rel()
		}
	}()

	lock.Lock()
	defer lock.Unlock()
	dir := filepath.Join(d.imagesDir(), imageDirName(digest))
	u, err = loadUnpacked(digest, dir)
	if err == nil {
		return u, rel, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	img, err := d.fetch(ctx, im)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching %s: %w", im.Ref, err)
	}
	if err := d.unpackTo(ctx, img, dir); err != nil {
		return nil, nil, fmt.Errorf("unpacking %s: %w", im.Ref, err)
	}
	u, err = loadUnpacked(digest, dir)
	if err != nil {
		return nil, nil, err
	}
	return u, rel, nil
}

// loadUnpacked reads an unpacked image's config; fs.ErrNotExist if the
// image is not unpacked.
func loadUnpacked(digest, dir string) (*unpacked, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "config.json"), err)
	}
	return &unpacked{digest: digest, dir: dir, rootfs: filepath.Join(dir, "rootfs"), config: cf.Config}, nil
}

// unpackTo unpacks into a temporary directory next to dir and renames it
// into place, so that dir either does not exist or is complete, and
// concurrent unpackers (other processes) do not step on each other: the
// loser of the rename discards its copy.
func (d *Driver) unpackTo(ctx context.Context, img v1.Image, dir string) error {
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if _, err := v1.ParseConfigFile(bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	tmp, err := os.MkdirTemp(d.imagesDir(), ".tmp-"+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Mkdir(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
		return err
	}
	if err := unpack(ctx, img, filepath.Join(tmp, "rootfs")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), raw, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	d.unpacks.Add(1)
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "config.json")); serr == nil {
			return nil // another process won the race
		}
		return err
	}
	return nil
}

// fetch opens the image a reference names: in an OCI layout directory, or in
// a registry (by digest; plain HTTP for loopback hosts, or with Insecure).
func (d *Driver) fetch(ctx context.Context, im driver.Image) (v1.Image, error) {
	ref, err := imageref.Parse(im.Ref)
	if err != nil {
		return nil, err
	}
	return ref.Image(ctx, imageref.FetchOptions{Insecure: im.Insecure, Keychain: d.o.keychain, Transport: d.o.transport})
}
