package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/slipway-dev/slipway/internal/atomicfile"
)

// stateVersion is the version of the state file format this code writes.
const stateVersion = 1

type stateFile struct {
	Version  int            `json:"version"`
	SavedAt  time.Time      `json:"saved_at"`
	Services []serviceState `json:"services"`
}

type serviceState struct {
	Name    string      `json:"name"`
	Hosts   []string    `json:"hosts"`
	Targets []string    `json:"targets"`
	Health  HealthCheck `json:"health"`
	// Maintenance is the 503 message of a stopped service.
	Maintenance string      `json:"maintenance,omitempty"`
	Static      *StaticSite `json:"static,omitempty"`
}

// MarshalJSON writes durations as "1s" rather than nanoseconds, for people
// reading the state file or the status API.
func (h HealthCheck) MarshalJSON() ([]byte, error) {
	return json.Marshal(healthJSON{
		Path: h.Path, Host: h.Host,
		Interval: durString(h.Interval), Timeout: durString(h.Timeout), Deadline: durString(h.Deadline),
		MaxStatus: h.MaxStatus,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *HealthCheck) UnmarshalJSON(b []byte) error {
	var j healthJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	out := HealthCheck{Path: j.Path, Host: j.Host, MaxStatus: j.MaxStatus}
	for _, f := range []struct {
		s string
		d *time.Duration
	}{{j.Interval, &out.Interval}, {j.Timeout, &out.Timeout}, {j.Deadline, &out.Deadline}} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return fmt.Errorf("health check duration: %w", err)
		}
		*f.d = d
	}
	*h = out
	return nil
}

type healthJSON struct {
	Path     string `json:"path,omitempty"`
	Host     string `json:"host,omitempty"`
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	Deadline string `json:"deadline,omitempty"`
	// MaxStatus is HealthCheck.MaxStatus (the default check's leniency).
	MaxStatus int `json:"maxStatus,omitempty"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// saveLocked writes the state as it will be once the service called name is
// replaced by change (removed if change is nil). It runs before the change
// is applied in memory, so a failed write leaves both as they were.
func (r *Router) saveLocked(name string, change *serviceState) error {
	return r.saveChangesLocked(map[string]*serviceState{name: change})
}

// saveChangesLocked writes the state as it will be once every service named
// in changes is replaced by its value (removed when nil).
func (r *Router) saveChangesLocked(changes map[string]*serviceState) error {
	if r.statePath == "" {
		return nil
	}
	st := stateFile{Version: stateVersion, SavedAt: time.Now().UTC(), Services: []serviceState{}}
	for n, s := range r.services {
		if _, changed := changes[n]; changed {
			continue
		}
		st.Services = append(st.Services, serviceState{Name: n, Hosts: s.hosts, Targets: s.active.Load().addrs(), Health: s.health, Maintenance: s.active.Load().maintenance, Static: s.active.Load().staticSpec()})
	}
	for _, change := range changes {
		if change != nil {
			st.Services = append(st.Services, *change)
		}
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("saving router state: %w", err)
	}
	if err := writeFileAtomic(r.statePath, append(b, '\n')); err != nil {
		return fmt.Errorf("saving router state: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data so that a reader or a crash sees
// either the old file or the new one, never a mix. Private: the router's
// state lives in serve's 0700 state dir, files 0600.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// load restores the state file, if there is one.
func (r *Router) load() error {
	b, err := os.ReadFile(r.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading router state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("loading router state %s: %w", r.statePath, err)
	}
	if st.Version < 1 || st.Version > stateVersion {
		return fmt.Errorf("loading router state %s: version %d, this Slipway reads %d: %w", r.statePath, st.Version, stateVersion, ErrStateVersion)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ss := range st.Services {
		req := DeployRequest{Service: ss.Name, Hosts: ss.Hosts, Targets: ss.Targets, Health: ss.Health}
		if err := req.normalize(); err != nil {
			return fmt.Errorf("loading router state %s: service %q: %w", r.statePath, ss.Name, err)
		}
		if _, dup := r.services[req.Service]; dup {
			return fmt.Errorf("loading router state %s: service %q listed twice", r.statePath, ss.Name)
		}
		if err := r.checkHostsLocked(req.Service, req.Hosts); err != nil {
			return fmt.Errorf("loading router state %s: service %q: %w", r.statePath, ss.Name, err)
		}
		svc := &service{name: req.Service, hosts: req.Hosts, health: req.Health}
		set := &targetSet{maintenance: ss.Maintenance}
		if ss.Static != nil {
			// A site whose files went missing answers 404s rather than
			// keeping the router from starting.
			site, err := openStatic(*ss.Static)
			if err != nil {
				r.cfg.log.Warn("static site not restored", "service", ss.Name, "error", err)
				site = &staticSite{spec: *ss.Static, idle: make(chan struct{}, 1)}
			}
			go site.index() // served lazily meanwhile
			set.static = site
		}
		for _, a := range req.Targets {
			set.targets = append(set.targets, r.newTarget(a))
		}
		svc.active.Store(set)
		r.services[svc.name] = svc
	}
	r.rebuildTableLocked()
	r.cfg.log.Info("router state loaded", "path", r.statePath, "services", len(r.services), "saved_at", st.SavedAt)
	return nil
}
