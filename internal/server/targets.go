package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
	"github.com/slipway-dev/slipway/internal/driver/process"
	"github.com/slipway-dev/slipway/internal/driver/swarm"
	"github.com/slipway-dev/slipway/internal/driver/targets"
)

// targetsDriver runs each store on its region's target (Options.Targets):
// the router stays here, in serve, and reaches every target's instances
// over the network (see the README's "Clusters and regions").
func (s *Server) targetsDriver() (driver.Driver, error) {
	o := s.o
	names := make([]string, 0, len(o.Targets))
	caps := map[string]driver.Capabilities{}
	for n, t := range o.Targets {
		names = append(names, n)
		switch t.Driver {
		case config.DriverProcess:
			caps[n] = driver.Capabilities{Name: "process", Isolation: "none"}
		case config.DriverDocker:
			caps[n] = driver.Capabilities{Name: "docker", Isolation: "container", Restart: true, Remote: t.Docker != "" && docker.IsRemoteHost(t.Docker)}
		case config.DriverSwarm:
			caps[n] = driver.Capabilities{Name: "swarm", Isolation: "container", Restart: true, Remote: true}
		default:
			return nil, fmt.Errorf("target %s: unknown driver %q", n, t.Driver)
		}
	}
	sort.Strings(names)
	fallback := config.DefaultTarget
	if o.Targets[fallback] == nil {
		fallback = names[0]
	}
	route := func(store string) (string, error) {
		if r := o.Regions[store]; r != "" && o.Targets[r] != nil {
			return r, nil
		}
		if o.Targets[config.DefaultTarget] != nil {
			return config.DefaultTarget, nil
		}
		return "", fmt.Errorf("store %s (region %q) has no target: add targets.%s or targets.default to the config and restart serve", store, o.Regions[store], o.Regions[store])
	}
	d := targets.New(names, fallback, caps, func(ctx context.Context, name string) (driver.Driver, error) {
		return s.openTarget(ctx, name, o.Targets[name])
	}, route)
	d.OnError = func(target string, err error) { s.log.Warn("target unreachable", "target", target, "error", err) }
	return d, nil
}

// openTarget connects to one target's runtime, scoped to this data dir as
// the single-driver modes are.
func (s *Server) openTarget(ctx context.Context, name string, t *config.Target) (driver.Driver, error) {
	sum := sha256.Sum256([]byte(s.o.DataDir))
	scope := map[string]string{"dev.slipway.datadir": hex.EncodeToString(sum[:8])}
	switch t.Driver {
	case config.DriverProcess:
		return process.New(filepath.Join(s.o.DataDir, "runtime"))
	case config.DriverDocker:
		// Output kept here, redacted, one directory per target.
		opts := []docker.Option{docker.WithLabels(scope), docker.WithLogDir(filepath.Join(s.o.DataDir, "docker-logs", name))}
		if t.Docker != "" {
			opts = append(opts, docker.WithHost(t.Docker))
		}
		return docker.New(ctx, opts...)
	case config.DriverSwarm:
		opts := []swarm.Option{swarm.WithLabels(scope), swarm.WithConstraints(t.Constraints...), swarm.WithReplicas(t.Replicas),
			swarm.WithResources(t.CPULimit(), int64(t.MemoryMB)<<20)}
		if name != config.DefaultTarget {
			opts = append(opts, swarm.WithRegion(name))
		}
		if t.Docker != "" {
			opts = append(opts, swarm.WithHost(t.Docker))
		}
		if t.Volume.Driver != "" || len(t.Volume.Options) > 0 {
			opts = append(opts, swarm.WithVolumeDriver(t.Volume.Driver, t.Volume.Options))
		}
		return swarm.New(ctx, opts...)
	}
	return nil, fmt.Errorf("unknown driver %q", t.Driver)
}
