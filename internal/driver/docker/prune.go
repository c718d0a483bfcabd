package docker

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/moby/moby/client"
)

// DefaultKeepReleases is how many recent releases' images KeepDigests keeps.
const DefaultKeepReleases = 5

// Prune removes the images the driver fetched (those tagged under its image
// repository, see WithImageRepo) except the manifest digests in keep (as "sha256:…", or any
// reference ending in "@sha256:…") and those any container, running or not,
// was created from. It removes only the driver's references (its own tag
// and the registry@digest it pulled by), so an image someone else also
// tagged stays on disk. It returns the digests it removed.
func (d *Driver) Prune(ctx context.Context, keep []string) ([]string, error) {
	kept := map[string]bool{}
	for _, k := range keep {
		if i := strings.LastIndex(k, "@"); i >= 0 {
			k = k[i+1:]
		}
		kept[k] = true
	}
	imgs, err := d.cli.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, fmt.Errorf("pruning: listing images: %w", err)
	}
	ctrs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("pruning: listing containers: %w", err)
	}
	inUse := map[string]bool{}
	for _, c := range ctrs.Items {
		inUse[c.ImageID] = true
	}

	var removed []string
	for _, img := range imgs.Items {
		if inUse[img.ID] {
			continue
		}
		for _, tag := range img.RepoTags {
			digest, ok := ownedDigest(d.opts.imageRepo, tag)
			if !ok || kept[digest] {
				continue
			}
			refs := []string{tag}
			for _, rd := range img.RepoDigests {
				if strings.HasSuffix(rd, "@"+digest) {
					refs = append(refs, rd)
				}
			}
			for _, ref := range refs {
				if _, err := d.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
					return removed, fmt.Errorf("pruning: removing %s: %w", ref, err)
				}
			}
			removed = append(removed, digest)
		}
	}
	sort.Strings(removed)
	return removed, nil
}

// KeepDigests computes Prune's keep list from a store's release history:
// the image digests of the n most recent releases (n <= 0 means
// DefaultKeepReleases), and always those of the current release and of the
// one before it, wherever they are in the history (after a rollback the
// current release is not the newest). history lists digests newest first,
// one per release; current is the active release's index in it (-1 when
// none is active).
func KeepDigests(history []string, current, n int) []string {
	if n <= 0 {
		n = DefaultKeepReleases
	}
	seen := map[string]bool{}
	var keep []string
	add := func(i int) {
		if i < 0 || i >= len(history) || history[i] == "" || seen[history[i]] {
			return
		}
		seen[history[i]] = true
		keep = append(keep, history[i])
	}
	add(current)
	if current >= 0 {
		add(current + 1)
	}
	for i := 0; i < n && i < len(history); i++ {
		add(i)
	}
	return keep
}
