package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Swarm is the single-node swarm a test runs against.
type Swarm struct {
	// NodeID is the node's id; Addr is the address it advertises (127.0.0.1
	// when RequireSwarm initialised it).
	NodeID, Addr string
	// Initialised is true when RequireSwarm made the engine a swarm manager
	// (and leaves the swarm when the test ends).
	Initialised bool
}

// swarmLockTimeout bounds how long RequireSwarm waits for another test
// process that holds the swarm.
const swarmLockTimeout = 10 * time.Minute

// RequireSwarm makes the Docker engine a single-node swarm manager for the
// test: when the engine is not in a swarm it runs `docker swarm init
// --advertise-addr 127.0.0.1`, and `docker swarm leave --force` when the
// test ends. The node gets the given labels (e.g. region=us-east-1), removed
// again at the end.
//
// Test processes (go test runs packages in parallel) take turns through a
// lock file in the temp dir, so one package's swarm never leaves under
// another's feet; plain containers of other packages keep working while the
// engine is in swarm mode. It skips the test without an engine or docker
// CLI, or fails it when SLIPWAY_REQUIRE_DOCKER=1.
func RequireSwarm(t testing.TB, labels map[string]string) *Swarm {
	t.Helper()
	if RequireDocker(t) == "" {
		return nil
	}
	if !lockSwarm(t) {
		return nil
	}
	s := &Swarm{}
	state := Docker(t, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	switch state {
	case "active true":
	case "inactive false":
		if out, err := dockerCmd("swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
			unavailable(t, "docker swarm init: %v: %s", err, out)
			return nil
		}
		s.Initialised = true
		t.Cleanup(func() {
			if out, err := dockerCmd("swarm", "leave", "--force"); err != nil {
				t.Logf("cleanup: docker swarm leave --force: %v: %s", err, out)
			}
		})
	default:
		unavailable(t, "the engine is in swarm state %q: want a manager, or no swarm", state)
		return nil
	}
	s.NodeID = Docker(t, "info", "--format", "{{.Swarm.NodeID}}")
	s.Addr = Docker(t, "info", "--format", "{{.Swarm.NodeAddr}}")
	if len(labels) > 0 {
		s.LabelNode(t, labels)
	}
	return s
}

// LabelNode adds labels to the node and removes them when the test ends.
func (s *Swarm) LabelNode(t testing.TB, labels map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"node", "update"}
	for _, k := range keys {
		args = append(args, "--label-add", k+"="+labels[k])
	}
	Docker(t, append(args, s.NodeID)...)
	t.Cleanup(func() {
		if s.Initialised {
			return // the node leaves the swarm, labels and all
		}
		rm := []string{"node", "update"}
		for _, k := range keys {
			rm = append(rm, "--label-rm", k)
		}
		if out, err := dockerCmd(append(rm, s.NodeID)...); err != nil {
			t.Logf("cleanup: docker node update: %v: %s", err, out)
		}
	})
}

// lockSwarm takes the cross-process swarm lock until the test ends.
func lockSwarm(t testing.TB) bool {
	t.Helper()
	path := filepath.Join(os.TempDir(), "slipway-test-swarm.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("opening the swarm lock %s: %v", path, err)
		return false
	}
	deadline := time.Now().Add(swarmLockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("waiting %s for the swarm lock %s: %v", swarmLockTimeout, path, err)
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Registered before the swarm's own cleanup, so it runs after it.
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
	return true
}

// dockerCmd runs the docker CLI against DockerHost and returns its combined output.
func dockerCmd(args ...string) (string, error) {
	out, err := dockerCommand(args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// SwarmCleanup removes services, containers, secrets and volumes labelled key=value
// (what one test created), reporting what it could not remove.
func SwarmCleanup(t testing.TB, key, value string) {
	t.Helper()
	f := "label=" + key + "=" + value
	if ids, err := dockerCmd("service", "ls", "-q", "--filter", f); err == nil && ids != "" {
		if out, err := dockerCmd(append([]string{"service", "rm"}, strings.Fields(ids)...)...); err != nil {
			t.Logf("cleanup: docker service rm: %v: %s", err, out)
		}
	}
	if ids, err := dockerCmd("ps", "-aq", "--filter", f); err == nil && ids != "" {
		if out, err := dockerCmd(append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
			t.Logf("cleanup: docker rm -f: %v: %s", err, out)
		}
	}
	// Secrets and volumes are in use until the services' tasks are gone.
	deadline := time.Now().Add(30 * time.Second)
	for _, kind := range []string{"secret", "volume"} {
		for {
			ids, err := dockerCmd(kind, "ls", "-q", "--filter", f)
			if err != nil || ids == "" {
				break
			}
			out, err := dockerCmd(append([]string{kind, "rm"}, strings.Fields(ids)...)...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("cleanup: docker %s rm: %v: %s", kind, err, out)
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

// dockerCommand is the docker CLI against DockerHost.
func dockerCommand(args ...string) *exec.Cmd {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+DockerHost())
	return cmd
}
