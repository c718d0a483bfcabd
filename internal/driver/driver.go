// Package driver is the contract between Slipway and the runtimes that run
// releases: the embedded process runtime, a Docker engine, (later) Docker Swarm.
//
// The core contract is Driver. Features only some runtimes have are small
// optional interfaces (Pruner, Waiter), discovered with a type assertion and
// announced in Capabilities. Every driver passes the conformance suite in
// drivertest.
package driver

import (
	"context"
	"errors"
	"io"
	"sort"
	"time"
)

// Labels Slipway puts on everything a driver creates, so that it can find,
// clean up and recover what it owns.
const (
	LabelManaged = "dev.slipway.managed" // always "true"
	LabelProject = "dev.slipway.project"
	LabelStore   = "dev.slipway.store"
	LabelApp     = "dev.slipway.app"
	LabelRelease = "dev.slipway.release"
	// LabelRole is "web" for routed instances, "hook" for one-off commands.
	LabelRole = "dev.slipway.role"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// Image names an image a driver can fetch by digest.
type Image struct {
	// Ref is a digest reference, e.g. "127.0.0.1:5000/fashion-us/web@sha256:…",
	// or "oci-layout:/path/to/layout@sha256:…" for the embedded store.
	Ref string
	// Insecure allows plain HTTP to a non-loopback registry.
	Insecure bool
}

// Spec describes one instance of a release.
type Spec struct {
	Image Image
	// Name is a readable, unique name, e.g. "acme-us-web-<release>-1".
	Name string
	// Env is the release env (secrets included: drivers must never put env on
	// a command line or in logs). PORT and the data dir variable are added by the driver.
	Env map[string]string
	// Port is the port the app listens on inside the instance (given in PORT).
	Port int
	// DataKey names the store's persistent directory; the same key gets the
	// same directory (or volume) across releases, mounted at /data.
	DataKey string
	// Labels are added to the driver's own (LabelManaged …) on whatever it creates.
	Labels map[string]string
	// StopTimeout is the SIGTERM grace period; default DefaultStopTimeout.
	StopTimeout time.Duration
	// Secrets are values (from Env) that must never be stored: a driver that
	// keeps the instance's output replaces them with [REDACTED] before it is written.
	Secrets []string
}

// Instance is a running (or exited) instance.
type Instance struct {
	ID   string
	Name string
	// Addr is host:port on which the router reaches the instance (loopback for local drivers).
	Addr string
	// Addrs, when set, lists every address the instance answers on, Addr
	// first: a swarm service with several replicas has one per task.
	Addrs  []string
	Labels map[string]string
	// State is "running" or "exited".
	State string
	// ExitCode is meaningful when State is "exited".
	ExitCode int
	Started  time.Time
}

// RunSpec describes a one-off command in a release's image (a hook).
type RunSpec struct {
	Image Image
	Name  string
	// Cmd runs through /bin/sh -c in the image's working directory when Shell is
	// true, else as the argv given.
	Cmd   []string
	Shell bool
	Env   map[string]string
	// DataKey mounts the store's persistent directory, as for instances.
	DataKey string
	Labels  map[string]string
	// Stdout and Stderr receive the output as it is produced.
	Stdout, Stderr io.Writer
}

// Driver is the core contract every runtime implements.
type Driver interface {
	// Capabilities describes the driver.
	Capabilities() Capabilities
	// Start fetches the image if needed, starts one instance and returns once
	// it is running (not necessarily healthy: the router's gate decides that).
	Start(ctx context.Context, spec Spec) (Instance, error)
	// Stop sends SIGTERM, waits up to the instance's stop timeout, then
	// SIGKILLs, and removes what Start created except the persistent data.
	// Stopping an unknown or already stopped instance is not an error.
	Stop(ctx context.Context, id string) error
	// List returns the instances this driver owns whose labels include all of match.
	List(ctx context.Context, match map[string]string) ([]Instance, error)
	// Run runs a one-off command to completion and returns its exit code. When
	// ctx ends the command and everything it started is killed.
	Run(ctx context.Context, spec RunSpec) (exitCode int, err error)
	// Logs writes an instance's captured output to w; with follow it keeps
	// writing until ctx ends or the instance exits.
	Logs(ctx context.Context, id string, w io.Writer, follow bool) error
}

// Pruner removes images a driver fetched that are no longer needed.
type Pruner interface {
	// Prune keeps the images of the given releases' digests and removes the other images it owns.
	Prune(ctx context.Context, keep []string) (removed []string, err error)
}

// Waiter reports instance exits, for supervision.
type Waiter interface {
	// Wait blocks until the instance exits and returns its exit code.
	Wait(ctx context.Context, id string) (int, error)
}

// Capabilities announces what a driver can do.
type Capabilities struct {
	// Name is "process", "docker", "swarm", ….
	Name string
	// Isolation is "none" (host processes) or "container".
	Isolation string
	// Remote is true when instances run on another host than Slipway.
	Remote bool
	// Prune, Wait say which optional interfaces are implemented.
	Prune, Wait bool
	// Restart is true when the runtime itself restarts crashed instances.
	Restart bool
}

// ErrNotFound is returned for an instance id the driver does not know, where that matters.
var ErrNotFound = errors.New("instance not found")

// ManagedLabels returns the labels for an instance of store/app at release.
func ManagedLabels(project, store, app, release, role string) map[string]string {
	return map[string]string{
		LabelManaged: "true",
		LabelProject: project,
		LabelStore:   store,
		LabelApp:     app,
		LabelRelease: release,
		LabelRole:    role,
	}
}

// WithManaged returns a driver's own labels (base), labels over them,
// LabelManaged, and LabelRole set to role (always when force, else only
// when labels lack one).
func WithManaged(base, labels map[string]string, role string, force bool) map[string]string {
	out := make(map[string]string, len(base)+len(labels)+2)
	for k, v := range base {
		out[k] = v
	}
	for k, v := range labels {
		out[k] = v
	}
	out[LabelManaged] = "true"
	if force || out[LabelRole] == "" {
		out[LabelRole] = role
	}
	return out
}

// SortInstances orders instances as List returns them: oldest Started
// first, then by Name; the sort is stable.
func SortInstances(out []Instance) {
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].Name < out[j].Name
	})
}

// Matches reports whether labels include every key/value of match.
func Matches(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}
