package dockerbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Pruner is a Builder that can remove its earlier builds of one store/app.
type Pruner interface {
	// PruneBuilds removes the builder's images carrying every label of
	// match, except keep (the build at hand), and returns their IDs.
	PruneBuilds(ctx context.Context, match map[string]string, keep string) ([]string, error)
}

var _ Pruner = (*Engine)(nil)

// PruneBuilds implements Pruner for the engine. Each build of a store/app
// moves its tag (slipway-build/<project>/<app>:<store>) to the new image and
// leaves the one before untagged; those are removed here. An image keeps
// its place when it still has a tag or a registry digest (someone tagged
// it, or the docker driver pulled it for a release: the driver's own prune
// decides about those) or a container uses it. BuildKit's layer cache is
// its own and stays.
func (e *Engine) PruneBuilds(ctx context.Context, match map[string]string, keep string) ([]string, error) {
	if len(match) == 0 {
		return nil, fmt.Errorf("pruning builds: no labels to match")
	}
	f := make(client.Filters)
	for _, k := range sortedKeys(match) {
		f = f.Add("label", k+"="+match[k])
	}
	imgs, err := e.cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("pruning builds: listing images: %w", err)
	}
	ctrs, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("pruning builds: listing containers: %w", err)
	}
	inUse := map[string]bool{}
	for _, c := range ctrs.Items {
		inUse[c.ImageID] = true
	}
	var removed []string
	for _, img := range imgs.Items {
		if img.ID == keep || inUse[img.ID] || named(img.RepoTags) || named(img.RepoDigests) {
			continue
		}
		_, err := e.cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{PruneChildren: true})
		switch {
		case err == nil:
			removed = append(removed, img.ID)
		case cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err):
			// Gone already, or a child image or a new container holds it.
		default:
			return removed, fmt.Errorf("pruning builds: removing %s: %w", img.ID, err)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// named reports whether refs has a real reference: engines before API 1.43
// list an untagged image with "<none>:<none>" and "<none>@<none>".
func named(refs []string) bool {
	return slices.ContainsFunc(refs, func(r string) bool { return !strings.HasPrefix(r, "<none>") })
}

var _ Pruner = (*Buildah)(nil)

// pruneRounds bounds PruneBuilds' passes: each removes the top images of
// earlier builds, which may leave their parents (the LABEL steps' images,
// labelled too) on top for the next.
const pruneRounds = 8

// PruneBuilds implements Pruner for buildah: its earlier builds of the
// store/app, untagged images carrying every label of match and no child,
// other than keep, are removed. The --layers cache of the Dockerfile's own
// steps carries no Slipway label (labels are the build's last steps) and
// stays; the images of those last steps differ in every build (the
// fingerprint and commit are labels) and are removed with their build.
func (b *Buildah) PruneBuilds(ctx context.Context, match map[string]string, keep string) ([]string, error) {
	keep = strings.TrimPrefix(keep, "sha256:")
	var removed []string
	for range pruneRounds {
		ids, err := b.untaggedWith(ctx, match)
		if err != nil {
			return removed, err
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == keep })
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			cmd, err := b.command(ctx, nil, "rmi", id)
			if err != nil {
				return removed, err
			}
			if err := run(cmd, nil); err != nil {
				return removed, fmt.Errorf("pruning builds: buildah rmi %s: %w", id[:12], err)
			}
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// untaggedWith lists buildah's untagged top images (no child) made by the
// final LABEL steps of a build whose labels include all of match. buildah 1.28 ORs --filter label=, so one filter
// narrows the list and each image's labels are checked.
func (b *Buildah) untaggedWith(ctx context.Context, match map[string]string) ([]string, error) {
	keys := sortedKeys(match)
	if len(keys) == 0 {
		return nil, fmt.Errorf("pruning builds: no labels to match")
	}
	cmd, err := b.command(ctx, nil, "images", "--no-trunc", "--filter", "label="+keys[0]+"="+match[keys[0]], "--format", "{{.ID}} {{.Name}}")
	if err != nil {
		return nil, err
	}
	list, err := output(cmd)
	if err != nil {
		return nil, fmt.Errorf("pruning builds: buildah images: %w", err)
	}
	var out []string
	for _, l := range strings.Split(list, "\n") {
		id, name, _ := strings.Cut(strings.TrimSpace(l), " ")
		id = strings.TrimPrefix(id, "sha256:")
		if len(id) != 64 || strings.TrimSpace(name) != "<none>" {
			continue
		}
		labels, labelStep, err := b.labels(ctx, id)
		if err != nil {
			return nil, err
		}
		if labelStep && all(match, labels) {
			out = append(out, id)
		}
	}
	return out, nil
}

// labels returns an image's labels, and whether its last step is one of
// the LABEL steps buildah appends to the final stage for --label (an
// earlier stage's images carry the labels too, but end with their own
// steps: they are the layer cache and stay).
func (b *Buildah) labels(ctx context.Context, id string) (labels map[string]string, labelStep bool, err error) {
	cmd, err := b.command(ctx, nil, "inspect", "--type", "image", id)
	if err != nil {
		return nil, false, err
	}
	js, err := output(cmd)
	if err != nil {
		return nil, false, fmt.Errorf("pruning builds: buildah inspect %s: %w", id[:12], err)
	}
	var info struct {
		OCIv1 struct {
			Config  struct{ Labels map[string]string } `json:"config"`
			History []struct {
				CreatedBy string `json:"created_by"`
			} `json:"history"`
		}
	}
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		return nil, false, fmt.Errorf("pruning builds: labels of %s: %w", id[:12], err)
	}
	labels = info.OCIv1.Config.Labels
	h := info.OCIv1.History
	labelStep = len(h) > 0 && strings.Contains(h[len(h)-1].CreatedBy, "#(nop) LABEL ")
	return labels, labelStep, nil
}

func all(match, labels map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// output runs cmd and returns its stdout; an error carries its stderr.
func output(cmd *exec.Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
