package server

import (
	"path/filepath"
	"strings"
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
