package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/redact"
)

// Schedule is a command run on a cron schedule in a store's live release.
type Schedule struct {
	Name    string `json:"name"`
	Cron    string `json:"cron"`
	Command string `json:"command"`
	// App whose image runs it; default the store's first app.
	App string `json:"app,omitempty"`
	// Timeout kills a run; default DefaultHookTimeout.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// scheduled is one store's schedule bound to its live release.
type scheduled struct {
	s       Schedule
	cron    *config.Cron
	req     DeployRequest // the live release's (env, secrets in memory only)
	release string
	next    time.Time
	running bool
}

// setSchedules binds the store's schedules to the release that just went live.
func (d *Deployer) setSchedules(req DeployRequest, release string) error {
	var list []*scheduled
	now := time.Now()
	for _, s := range req.Schedules {
		c, err := config.ParseCron(s.Cron)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", s.Name, err)
		}
		list = append(list, &scheduled{s: s, cron: c, req: req, release: release, next: c.Next(now)})
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.schedules == nil {
		d.schedules = map[string][]*scheduled{}
	}
	// A schedule still running keeps running; it is not started twice.
	for _, old := range d.schedules[req.Store] {
		for _, n := range list {
			if n.s.Name == old.s.Name && old.running {
				n.running = true
			}
		}
	}
	d.schedules[req.Store] = list
	return nil
}

// RunSchedules fires due schedules every tick until ctx ends. A run still
// going when its schedule fires again is not doubled: that firing is skipped
// and said in the store's log.
func (d *Deployer) RunSchedules(ctx context.Context, log *slog.Logger, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, sc := range d.dueSchedules(now, log) {
				wg.Add(1)
				go func() { defer wg.Done(); d.runScheduled(ctx, sc) }()
			}
		}
	}
}

func (d *Deployer) dueSchedules(now time.Time, log *slog.Logger) []*scheduled {
	d.mu.Lock()
	defer d.mu.Unlock()
	var due []*scheduled
	for _, list := range d.schedules {
		for _, sc := range list {
			if sc.next.IsZero() || now.Before(sc.next) {
				continue
			}
			sc.next = sc.cron.Next(now)
			if sc.running {
				d.logEvent(Event{Time: now, Store: sc.req.Store, Stage: "schedule " + sc.s.Name, Message: "still running: this firing is skipped"})
				continue
			}
			sc.running = true
			due = append(due, sc)
		}
	}
	return due
}

func (d *Deployer) runScheduled(ctx context.Context, sc *scheduled) {
	req := sc.req
	stage := "schedule " + sc.s.Name
	var secretVals []string
	for _, k := range req.Secrets {
		secretVals = append(secretVals, req.Env[k])
	}
	red := redact.New(secretVals...)
	say := func(msg string) {
		d.logEvent(Event{Time: time.Now(), Store: req.Store, Stage: stage, Message: red.String(msg)})
	}
	defer func() {
		d.mu.Lock()
		for _, list := range d.schedules {
			for _, s := range list {
				if s.s.Name == sc.s.Name && s.req.Store == req.Store {
					s.running = false
				}
			}
		}
		sc.running = false
		d.mu.Unlock()
	}()
	timeout := sc.s.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	app := appFor(req, sc.s.App)
	lines := &lineEmitter{say: say}
	out := red.Writer(lines)
	say(fmt.Sprintf("running %q in release %s", sc.s.Command, sc.release))
	t0 := time.Now()
	code, err := d.Driver.Run(rctx, driver.RunSpec{
		Image: app.Image, Name: fmt.Sprintf("%s-%s-cron-%s-%d", req.Project, req.Store, sc.s.Name, t0.Unix()),
		Cmd: []string{sc.s.Command}, Shell: true, Env: maps.Clone(instanceEnv(req, app, sc.release)), DataKey: dataKey(req),
		Labels: driver.ManagedLabels(req.Project, req.Store, app.App, sc.release, "cron"), Stdout: out, Stderr: out,
	})
	out.Close()
	lines.flush()
	took := time.Since(t0).Round(time.Millisecond)
	switch {
	case err != nil:
		say(fmt.Sprintf("failed after %s: %v", took, err))
	case code != 0:
		say(fmt.Sprintf("exited with status %d after %s", code, took))
	default:
		say(fmt.Sprintf("ok (%s)", took))
	}
}

var _ io.Writer = (*lineEmitter)(nil)
