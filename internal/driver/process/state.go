package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/atomicfile"
	"github.com/slipway-dev/slipway/internal/driver"
)

// stateVersion is the version of the instance records this code writes; it
// reads records of this version or older.
const stateVersion = 1

// record is what <dataDir>/instances/<id>.json holds about an instance, so
// that any Driver on the same data directory (after `slipway serve`
// restarts) can list, follow and stop it. It holds no environment: that may
// contain secrets.
type record struct {
	Version int               `json:"version"`
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Labels  map[string]string `json:"labels"`
	Image   string            `json:"image"`
	Digest  string            `json:"digest"`
	DataKey string            `json:"dataKey,omitempty"`
	Addr    string            `json:"addr"`
	// PID is the instance's main process, the leader of process group PGID.
	PID  int `json:"pid"`
	PGID int `json:"pgid"`
	// StartTicks is the process's start time from /proc/<pid>/stat (0 where
	// unknown); a live process with this pid but another start time is not
	// ours (the pid was reused).
	StartTicks    uint64    `json:"startTicks,omitempty"`
	StopTimeoutMS int64     `json:"stopTimeoutMs"`
	Started       time.Time `json:"started"`
	// State is "running" until the process exits and a driver notices;
	// ExitCode is then its code, or -1 when it exited unobserved.
	State    string `json:"state"`
	ExitCode int    `json:"exitCode"`
	// Cgroup (a hook's cgroup v2 dir) and Marker (its SLIPWAY_RUN_ID) find
	// what a hook started that left its process group, to kill it too.
	Cgroup string `json:"cgroup,omitempty"`
	Marker string `json:"marker,omitempty"`
}

const (
	stateRunning = "running"
	stateExited  = "exited"
)

var idPattern = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

func (d *Driver) instancesDir() string        { return filepath.Join(d.dir, "instances") }
func (d *Driver) recordPath(id string) string { return filepath.Join(d.instancesDir(), id+".json") }
func (d *Driver) logPath(id string) string    { return filepath.Join(d.instancesDir(), id+".log") }

// lockState serialises changes to instance records across Drivers and processes.
func (d *Driver) lockState() (func(), error) {
	unlock, err := lockFile(filepath.Join(d.instancesDir(), ".lock"))
	if err != nil {
		return nil, fmt.Errorf("locking instance records: %w", err)
	}
	return unlock, nil
}

// readRecord loads an instance record; fs.ErrNotExist when there is none.
func (d *Driver) readRecord(id string) (*record, error) {
	if !idPattern.MatchString(id) {
		return nil, fs.ErrNotExist
	}
	r, err := d.records.read(d.recordPath(id))
	if err != nil {
		return nil, err
	}
	if r.Version > stateVersion {
		return nil, fmt.Errorf("reading %s: version %d is newer than this Slipway understands (%d)", d.recordPath(id), r.Version, stateVersion)
	}
	return r, nil
}

// writeRecord replaces the record atomically (temp file, fsync, rename).
func (d *Driver) writeRecord(r *record) error {
	r.Version = stateVersion
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	// This process's own writes never rely on the file's identity changing
	// (timestamps are coarse): the cached copy goes.
	defer d.records.forget(d.recordPath(r.ID))
	return writeAtomic(d.recordPath(r.ID), b)
}

// listRecords loads every instance record, oldest first.
func (d *Driver) listRecords() ([]*record, error) {
	ents, err := os.ReadDir(d.instancesDir())
	if err != nil {
		return nil, err
	}
	var out []*record
	present := map[string]bool{}
	defer d.records.keepOnly(present)
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !idPattern.MatchString(id) {
			continue
		}
		present[d.recordPath(id)] = true
		r, err := d.readRecord(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // stopped meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// alive reports whether the record's process is still running (and is the
// same process: its start time matches).
func (r *record) alive() bool {
	ticks, ok := procStart(r.PID)
	if !ok {
		return false
	}
	return r.StartTicks == 0 || ticks == r.StartTicks
}

func (r *record) instance() driver.Instance {
	labels := make(map[string]string, len(r.Labels))
	for k, v := range r.Labels {
		labels[k] = v
	}
	return driver.Instance{
		ID:       r.ID,
		Name:     r.Name,
		Addr:     r.Addr,
		Labels:   labels,
		State:    r.State,
		ExitCode: r.ExitCode,
		Started:  r.Started,
	}
}

func writeAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}
