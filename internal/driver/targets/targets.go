// Package targets is a driver that runs each store on its region's target:
// one inner driver per target (process, docker or swarm, on its own engine),
// chosen by the store label of what it starts. The server builds it from the
// config's targets: map.
//
// Inner drivers are opened on first use and retried after a failure, so an
// unreachable target fails only its stores' Start and Run, with an error
// naming the target; List and Prune skip it (and say so through OnError).
// Instance ids are "<target>:<inner id>", so Stop, Logs and Wait reach the
// right target without a lookup; an id without a prefix (from before targets
// were configured) belongs to the default target.
package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// Opener connects to one target's runtime.
type Opener func(ctx context.Context, target string) (driver.Driver, error)

// Router says which target runs a store ("" or an error when none does).
type Router func(store string) (string, error)

// retryAfter is how long a target that could not be opened is left alone;
// openTimeout bounds one attempt (an ssh:// engine that does not answer).
const (
	retryAfter  = 5 * time.Second
	openTimeout = 20 * time.Second
)

// Driver dispatches to the targets' drivers.
type Driver struct {
	names    []string
	fallback string
	open     Opener
	route    Router
	caps     map[string]driver.Capabilities
	// OnError, when set, hears about targets List or Prune skipped.
	OnError func(target string, err error)

	mu      sync.Mutex
	drivers map[string]driver.Driver
	failed  map[string]failure
	opening map[string]*sync.Mutex
}

type failure struct {
	at  time.Time
	err error
}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Pruner = (*Driver)(nil)
	_ driver.Waiter = (*Driver)(nil)
)

// New returns a driver over the named targets; fallback is the target of
// unprefixed ids. caps describes each target's driver before it is opened
// (its Name and Restart are what matter).
func New(names []string, fallback string, caps map[string]driver.Capabilities, open Opener, route Router) *Driver {
	names = append([]string(nil), names...)
	sort.Strings(names)
	return &Driver{names: names, fallback: fallback, open: open, route: route, caps: caps,
		drivers: map[string]driver.Driver{}, failed: map[string]failure{}, opening: map[string]*sync.Mutex{}}
}

// Capabilities: Restart only when every target's runtime restarts crashed
// instances (else Slipway supervises them all); Remote when any target is.
func (d *Driver) Capabilities() driver.Capabilities {
	c := driver.Capabilities{Name: "targets", Isolation: "none", Prune: true, Wait: true, Restart: len(d.names) > 0}
	var parts []string
	for _, n := range d.names {
		tc := d.caps[n]
		parts = append(parts, n+"="+tc.Name)
		if tc.Isolation == "container" {
			c.Isolation = "container"
		}
		c.Remote = c.Remote || tc.Remote
		c.Restart = c.Restart && tc.Restart
	}
	c.Name = "targets(" + strings.Join(parts, ",") + ")"
	return c
}

// Names returns the target names, sorted.
func (d *Driver) Names() []string { return append([]string(nil), d.names...) }

// Target returns the opened driver of a target (connecting if needed). A
// slow or unreachable target holds up only its own callers.
func (d *Driver) Target(ctx context.Context, name string) (driver.Driver, error) {
	if !d.known(name) {
		return nil, fmt.Errorf("no target %q (targets: %s)", name, strings.Join(d.names, ", "))
	}
	d.mu.Lock()
	om, ok := d.opening[name]
	if !ok {
		om = &sync.Mutex{}
		d.opening[name] = om
	}
	d.mu.Unlock()
	om.Lock()
	defer om.Unlock()
	d.mu.Lock()
	dr, ok := d.drivers[name]
	f, failed := d.failed[name]
	d.mu.Unlock()
	if ok {
		return dr, nil
	}
	if failed && time.Since(f.at) < retryAfter {
		return nil, f.err
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	dr, err := d.open(octx, name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("target %s is unreachable: %w", name, err)
		d.failed[name] = failure{at: time.Now(), err: err}
		return nil, err
	}
	delete(d.failed, name)
	d.drivers[name] = dr
	return dr, nil
}

func (d *Driver) known(name string) bool {
	for _, n := range d.names {
		if n == name {
			return true
		}
	}
	return false
}

// forStore opens the target of the store a spec's labels name.
func (d *Driver) forStore(ctx context.Context, labels map[string]string) (string, driver.Driver, error) {
	store := labels[driver.LabelStore]
	name, err := d.route(store)
	if err != nil {
		return "", nil, err
	}
	dr, err := d.Target(ctx, name)
	return name, dr, err
}

// split parses "<target>:<id>".
func (d *Driver) split(id string) (string, string) {
	if t, rest, ok := strings.Cut(id, ":"); ok && d.known(t) {
		return t, rest
	}
	return d.fallback, id
}

func join(target, id string) string { return target + ":" + id }

func wrap(target string, in driver.Instance) driver.Instance {
	in.ID = join(target, in.ID)
	return in
}

// Start starts the instance on its store's target.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	t, dr, err := d.forStore(ctx, spec.Labels)
	if err != nil {
		return driver.Instance{}, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	in, err := dr.Start(ctx, spec)
	if err != nil {
		return driver.Instance{}, fmt.Errorf("target %s: %w", t, err)
	}
	return wrap(t, in), nil
}

// Run runs the command on its store's target.
func (d *Driver) Run(ctx context.Context, spec driver.RunSpec) (int, error) {
	t, dr, err := d.forStore(ctx, spec.Labels)
	if err != nil {
		return -1, fmt.Errorf("running %s: %w", spec.Name, err)
	}
	code, err := dr.Run(ctx, spec)
	if err != nil {
		return code, fmt.Errorf("target %s: %w", t, err)
	}
	return code, nil
}

// Stop stops the instance on its target.
func (d *Driver) Stop(ctx context.Context, id string) error {
	t, inner := d.split(id)
	dr, err := d.Target(ctx, t)
	if err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	return dr.Stop(ctx, inner)
}

// Logs writes the instance's output from its target.
func (d *Driver) Logs(ctx context.Context, id string, w io.Writer, follow bool) error {
	t, inner := d.split(id)
	dr, err := d.Target(ctx, t)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	return dr.Logs(ctx, inner, w, follow)
}

// Wait waits on the target's driver; one that does not report exits
// (swarm restarts tasks itself) blocks until ctx ends.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	t, inner := d.split(id)
	dr, err := d.Target(ctx, t)
	if err != nil {
		return -1, fmt.Errorf("waiting for %s: %w", id, err)
	}
	if w, ok := dr.(driver.Waiter); ok {
		return w.Wait(ctx, inner)
	}
	<-ctx.Done()
	return -1, ctx.Err()
}

// List lists every reachable target's instances; unreachable targets are
// skipped (reported to OnError), so one down region does not blind serve
// to the others.
func (d *Driver) List(ctx context.Context, match map[string]string) ([]driver.Instance, error) {
	var out []driver.Instance
	var errs []error
	for _, t := range d.names {
		dr, err := d.Target(ctx, t)
		if err == nil {
			var ins []driver.Instance
			if ins, err = dr.List(ctx, match); err == nil {
				for _, in := range ins {
					out = append(out, wrap(t, in))
				}
				continue
			}
			err = fmt.Errorf("target %s: %w", t, err)
		}
		errs = append(errs, err)
		if d.OnError != nil {
			d.OnError(t, err)
		}
	}
	if len(out) == 0 && len(errs) == len(d.names) && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// Prune prunes every reachable target whose driver prunes.
func (d *Driver) Prune(ctx context.Context, keep []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, t := range d.names {
		d.mu.Lock()
		dr, ok := d.drivers[t] // only targets in use: pruning never connects
		d.mu.Unlock()
		p, isPruner := dr.(driver.Pruner)
		if !ok || !isPruner {
			continue
		}
		r, err := p.Prune(ctx, keep)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t, err))
		}
	}
	return removed, errors.Join(errs...)
}

// Close closes the opened drivers that can be closed.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, dr := range d.drivers {
		if c, ok := dr.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
