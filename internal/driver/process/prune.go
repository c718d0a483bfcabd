package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleUnpack is the age after which an unfinished unpack directory (left by
// a crash) is removed by Prune.
const staleUnpack = time.Hour

// Prune removes the unpacked images whose digests are not in keep and that
// no recorded instance (running or exited) and no Start or Run in progress
// uses. keep holds digests ("sha256:…") or digest references ("…@sha256:…").
// It returns the digests it removed.
func (d *Driver) Prune(ctx context.Context, keep []string) ([]string, error) {
	keepSet := map[string]bool{}
	for _, k := range keep {
		if i := strings.LastIndex(k, "@"); i >= 0 {
			k = k[i+1:]
		}
		keepSet[k] = true
	}
	recs, err := d.listRecords()
	if err != nil {
		return nil, fmt.Errorf("pruning images: %w", err)
	}
	for _, r := range recs {
		keepSet[r.Digest] = true
	}
	ents, err := os.ReadDir(d.imagesDir())
	if err != nil {
		return nil, fmt.Errorf("pruning images: %w", err)
	}
	var removed []string
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("pruning images: %w", err)
		}
		name := e.Name()
		p := filepath.Join(d.imagesDir(), name)
		if strings.HasPrefix(name, ".") {
			// Unfinished unpacks and trash from earlier prunes.
			if fi, err := e.Info(); err == nil && (strings.HasPrefix(name, ".trash-") || time.Since(fi.ModTime()) > staleUnpack) {
				os.RemoveAll(p)
			}
			continue
		}
		digest := strings.Replace(name, "-", ":", 1)
		if keepSet[digest] {
			continue
		}
		// Move it out of the way while holding the lock Start and Run take
		// before looking: they either marked it in use already, or will
		// find it gone and unpack again.
		d.mu.Lock()
		if d.inUse[digest] > 0 {
			d.mu.Unlock()
			continue
		}
		trash := filepath.Join(d.imagesDir(), ".trash-"+name+"-"+newID())
		err := os.Rename(p, trash)
		d.mu.Unlock()
		if err != nil {
			return removed, fmt.Errorf("pruning %s: %w", digest, err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return removed, fmt.Errorf("pruning %s: %w", digest, err)
		}
		removed = append(removed, digest)
	}
	return removed, nil
}
