package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// dockerfile is the equivalent of what Slipway builds: the same base, the
// .deploy contents at /var/www, node server.js.
func dockerfile(base string) string {
	return "FROM " + base + "\nWORKDIR /var/www\nCOPY .deploy/ ./\nENTRYPOINT [\"node\",\"server.js\"]\n"
}

// dockerCLI runs the docker CLI. DOCKER_BUILDKIT=0 selects the legacy
// builder explicitly: this machine's CLI has no buildx plugin.
type dockerCLI struct {
	mu   sync.Mutex
	tags map[string]bool // image names this bench created, removed by Cleanup
}

func (d *dockerCLI) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 20))
	}
	return out.String(), nil
}

func (d *dockerCLI) track(tag string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tags == nil {
		d.tags = map[string]bool{}
	}
	d.tags[tag] = true
}

// rmi removes an image this bench tagged, by that name only: an image ID
// other tags share (another agent's identical base) is only untagged.
func (d *dockerCLI) rmi(ctx context.Context, tag string) error {
	_, err := d.run(ctx, "rmi", tag)
	if err != nil && strings.Contains(err.Error(), "No such image") {
		err = nil
	}
	if err == nil {
		d.mu.Lock()
		delete(d.tags, tag)
		d.mu.Unlock()
	}
	return err
}

// Cleanup removes every image name still tracked.
func (d *dockerCLI) Cleanup() []error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d.mu.Lock()
	var tags []string
	for t := range d.tags {
		tags = append(tags, t)
	}
	d.mu.Unlock()
	var errs []error
	for _, t := range tags {
		if err := d.rmi(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// build runs docker build; cache=false adds --no-cache. It reports how many
// steps the builder took from its cache.
func (d *dockerCLI) build(ctx context.Context, dir, tag string, cache bool) (time.Duration, int, error) {
	args := []string{"build", "-t", tag}
	if !cache {
		args = append(args, "--no-cache")
	}
	args = append(args, dir)
	d.track(tag)
	start := time.Now()
	out, err := d.run(ctx, args...)
	el := time.Since(start)
	return el, strings.Count(out, "Using cache"), err
}

type pushStats struct {
	pushed, mounted, existed int
	ids                      map[string]string // short layer ID -> what happened
}

func (p pushStats) String() string {
	return fmt.Sprintf("layers pushed %d, mounted %d, already there %d", p.pushed, p.mounted, p.existed)
}

func (d *dockerCLI) push(ctx context.Context, tag string) (time.Duration, pushStats, error) {
	start := time.Now()
	out, err := d.run(ctx, "push", tag)
	el := time.Since(start)
	st := pushStats{ids: map[string]string{}}
	for _, l := range strings.Split(out, "\n") {
		id, what, _ := strings.Cut(l, ": ")
		switch {
		case what == "Pushed":
			st.pushed++
		case strings.HasPrefix(what, "Mounted from "):
			st.mounted++
		case what == "Layer already exists":
			st.existed++
		default:
			continue
		}
		st.ids[id] = what
	}
	return el, st, err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// topDiffID returns the diff ID (hex, no algorithm) of an image's last layer.
func (d *dockerCLI) topDiffID(ctx context.Context, tag string) (string, error) {
	out, err := d.run(ctx, "image", "inspect", "--format", "{{range .RootFS.Layers}}{{println .}}{{end}}", tag)
	if err != nil {
		return "", err
	}
	ls := strings.Fields(out)
	if len(ls) == 0 {
		return "", fmt.Errorf("image %s has no layers", tag)
	}
	return strings.TrimPrefix(ls[len(ls)-1], "sha256:"), nil
}
