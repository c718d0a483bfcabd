package config

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Target drivers.
const (
	DriverProcess = "process"
	DriverDocker  = "docker"
	DriverSwarm   = "swarm"
)

// DefaultTarget is the targets: key used by stores whose region has none.
const DefaultTarget = "default"

// Target is where the stores of one region run (targets: <region>: …).
type Target struct {
	Pos Pos `yaml:"-" json:"-"`
	// Driver is process, docker or swarm.
	Driver string `yaml:"driver" json:"driver"`
	// Docker is the engine address for docker and swarm (a manager):
	// unix://, tcp:// or ssh://user@host; default DOCKER_HOST.
	Docker string `yaml:"docker" json:"docker,omitempty"`
	// Constraints are extra swarm placement constraints (node.labels.region
	// == <region> is always added, except for the default target).
	Constraints []string `yaml:"constraints" json:"constraints,omitempty"`
	// Replicas is the tasks per instance on swarm; default 1.
	Replicas int `yaml:"replicas" json:"replicas,omitempty"`
	// CPUs and MemoryMB limit each swarm task; unset means no limit.
	CPUs     string `yaml:"cpus" json:"cpus,omitempty"`
	MemoryMB int    `yaml:"memoryMB" json:"memoryMB,omitempty"`
	// Volume is the /data volume's driver on swarm (e.g. local with NFS
	// options, for one /data shared by every node).
	Volume VolumeSpec `yaml:"volume" json:"volume,omitzero"`
}

// VolumeSpec names a Docker volume driver and its options.
type VolumeSpec struct {
	Driver  string            `yaml:"driver" json:"driver,omitempty"`
	Options map[string]string `yaml:"options" json:"options,omitempty"`
}

// TargetFor returns the target a store deploys to: its region's, else the
// default one. ok is false when the config has no targets: (the serve's own
// --driver applies) or none fits.
func (c *Config) TargetFor(store string) (name string, t *Target, ok bool) {
	if len(c.Targets) == 0 {
		return "", nil, false
	}
	s := c.Store(store)
	if s != nil {
		if t := c.Targets[s.Region]; t != nil && s.Region != "" {
			return s.Region, t, true
		}
	}
	if t := c.Targets[DefaultTarget]; t != nil {
		return DefaultTarget, t, true
	}
	return "", nil, false
}

// CPULimit is CPUs as a number (0 when unset).
func (t *Target) CPULimit() float64 {
	f, _ := strconv.ParseFloat(t.CPUs, 64)
	return f
}

// targets validates targets: and that every deployable store has one.
func (v *validator) targets() {
	c := v.c
	if len(c.Targets) == 0 {
		return
	}
	names := make([]string, 0, len(c.Targets))
	for n := range c.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	regions := map[string]bool{}
	for _, s := range c.Stores {
		if s.Deployable() && s.Region != "" {
			regions[s.Region] = true
		}
	}
	for _, n := range names {
		t := c.Targets[n]
		v.target(n, t)
		if n != DefaultTarget && !regions[n] {
			v.ps.warnf(c.File, t.Pos, DidYouMean(n, slices.Sorted(mapKeys(regions))), "targets.%s: no deployable store has region %q", n, n)
		}
	}
	if c.Targets[DefaultTarget] != nil {
		return
	}
	for _, id := range c.DeployableIDs() {
		s := c.Stores[id]
		if c.Targets[s.Region] == nil {
			v.ps.errorf(c.File, s.Pos, fmt.Sprintf("add targets.%s, or targets.default", s.Region),
				"store %q: region %q has no target", id, s.Region)
		}
	}
}

func (v *validator) target(name string, t *Target) {
	file, pos := v.c.File, t.Pos
	where := "targets." + name
	switch t.Driver {
	case DriverProcess:
		if t.Docker != "" {
			v.ps.errorf(file, pos, "the process runtime runs on serve's own host", "%s: docker: only goes with driver docker or swarm", where)
		}
	case DriverDocker, DriverSwarm:
		if t.Docker != "" {
			if err := checkEngineURL(t.Docker); err != nil {
				v.ps.errorf(file, pos, "unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host", "%s: docker: %v", where, err)
			}
		}
	case "":
		v.ps.errorf(file, pos, "driver: process, docker or swarm", "%s: no driver", where)
		return
	default:
		v.ps.errorf(file, pos, DidYouMean(t.Driver, []string{DriverProcess, DriverDocker, DriverSwarm}), "%s: unknown driver %q", where, t.Driver)
		return
	}
	if t.Driver != DriverSwarm && (len(t.Constraints) > 0 || t.Replicas != 0 || t.CPUs != "" || t.MemoryMB != 0 || t.Volume.Driver != "" || len(t.Volume.Options) > 0) {
		v.ps.errorf(file, pos, "", "%s: constraints, replicas, cpus, memoryMB and volume are swarm settings (driver is %s)", where, t.Driver)
	}
	for _, ct := range t.Constraints {
		if !strings.Contains(ct, "==") && !strings.Contains(ct, "!=") {
			v.ps.errorf(file, pos, "e.g. node.role==worker", "%s: constraint %q: want KEY==VALUE or KEY!=VALUE", where, ct)
		}
	}
	if t.Replicas < 0 || t.Replicas > 32 {
		v.ps.errorf(file, pos, "", "%s: replicas %d: want 1 to 32", where, t.Replicas)
	}
	if t.CPUs != "" {
		if f, err := strconv.ParseFloat(t.CPUs, 64); err != nil || f <= 0 {
			v.ps.errorf(file, pos, "e.g. 0.5", "%s: cpus %q: want a positive number", where, t.CPUs)
		}
	}
	if t.MemoryMB < 0 {
		v.ps.errorf(file, pos, "", "%s: memoryMB %d: want a positive number", where, t.MemoryMB)
	}
}

// checkEngineURL accepts Docker engine addresses, never with a password.
func checkEngineURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	switch u.Scheme {
	case "unix", "tcp", "ssh", "npipe":
	default:
		return fmt.Errorf("%q: scheme %q: want unix, tcp or ssh", s, u.Scheme)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return fmt.Errorf("the address holds a password: use an ssh key")
		}
	}
	if u.Scheme != "unix" && u.Scheme != "npipe" && u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
