package server

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// After a serve restart, recovery keeps the live release's worker running
// (it has no route, but its web has): the heartbeat goes on.
func TestWorkerSurvivesServeRestart(t *testing.T) {
	dir := procRepo(t)
	data := t.TempDir()
	h := start(t, data)
	rel, _ := h.buildDeploy(dir)
	beats := filepath.Join(data, "runtime", "data", "shop-us", "heartbeat")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(beats), "beat "+rel.ID) })
	h.s.o.StopOnExit = false
	h.stop()

	h2 := start(t, data)
	procs := h2.instances(map[string]string{driver.LabelRole: pipeline.RoleProcess})
	if len(procs) != 1 || procs[0].State != "running" || procs[0].Labels[driver.LabelRelease] != rel.ID {
		t.Fatalf("worker instances after the restart: %+v", procs)
	}
	if strings.Contains(readFile(beats), "stopped "+rel.ID) {
		t.Fatalf("recovery stopped the live release's worker:\n%s", readFile(beats))
	}
	n := strings.Count(readFile(beats), "\n")
	waitFor(t, 5*time.Second, func() bool { return strings.Count(readFile(beats), "\n") > n+3 })
}

// A worker kept across a serve restart is supervised again: the new serve
// restored its saved spec, so when it crashes (kill -9) it is restarted, in
// the same release, and its heartbeat resumes. Crashing it again restarts it
// again (with backoff), and its spec follows the new instance.
func TestKeptWorkerRestartedAfterServeRestart(t *testing.T) {
	dir := procRepo(t)
	data := t.TempDir()
	h := start(t, data)
	rel, _ := h.buildDeploy(dir)
	beats := filepath.Join(data, "runtime", "data", "shop-us", "heartbeat")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(beats), "beat "+rel.ID) })
	h.s.o.StopOnExit = false
	h.stop()

	h2 := start(t, data)
	for round := 1; round <= 2; round++ {
		pid := findPID(t, "worker.js", data)
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, 20*time.Second, func() bool {
			p := findPIDOrZero("worker.js", data)
			return p != 0 && p != pid
		})
		n := strings.Count(readFile(beats), "\n")
		waitFor(t, 5*time.Second, func() bool { return strings.Count(readFile(beats), "\n") > n+2 })
		procs := h2.instances(map[string]string{driver.LabelRole: pipeline.RoleProcess})
		if len(procs) != 1 || procs[0].State != "running" || procs[0].Labels[driver.LabelRelease] != rel.ID {
			t.Fatalf("round %d: worker instances after the crash: %+v", round, procs)
		}
		// The saved spec follows the new instance: a third serve would supervise it.
		waitFor(t, 5*time.Second, func() bool {
			specs, _ := h2.s.State.Specs(context.Background())
			_, ok := specs[procs[0].ID]
			return ok && len(specs) == 2 // the web's and the worker's
		})
	}
	if !strings.Contains(lastLine(readFile(beats)), "beat "+rel.ID) {
		t.Fatalf("the restarted worker does not beat for %s:\n%s", rel.ID, lastLine(readFile(beats)))
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
