//go:build linux

package process

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// leftovers lists live processes whose command line holds token.
func leftovers(token string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if ticks, alive := procStart(atoi(e.Name())); !alive || ticks == 0 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), token) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// A hook that times out is killed with everything it started, including
// children that called setsid (left its process group and session), one of
// them orphaned at once by a subshell that exits. Checked in /proc, with a
// cgroup where one is available and with the /proc fallback.
func TestTimedOutHookLeavesNothing(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		if _, err := os.Stat("/bin/setsid"); err != nil {
			t.Skip("no setsid")
		}
	}
	modes := []struct {
		name     string
		noCgroup bool
	}{{"cgroup", false}, {"proc", true}}
	for i, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if !m.noCgroup && cgroupRoot() == "" {
				t.Skip("no writable cgroup v2 here: the /proc fallback is what runs")
			}
			noCgroup = m.noCgroup
			defer func() { noCgroup = false }()
			// Other packages' tests run hooks at the same time (go test ./...
			// runs packages in parallel): only cgroups this subtest made count.
			before := runCgroups()
			store := newLayoutStore(t)
			img := appImage(t, store, nil)
			d := newDriver(t, t.TempDir())
			a, b := strconv.Itoa(4321+10*i), strconv.Itoa(4322+10*i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var out strings.Builder
			t0 := time.Now()
			_, err := d.Run(ctx, driver.RunSpec{Image: img, Name: "setsid-hook", Shell: true, Stdout: &out, Stderr: &out,
				Cmd: []string{"setsid sleep " + a + " & (setsid sleep " + b + " &); sleep 60"}})
			if err == nil || time.Since(t0) > 10*time.Second {
				t.Fatalf("Run = %v after %s, want the timeout", err, time.Since(t0))
			}
			var left []string
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if left = append(leftovers("sleep "+a), leftovers("sleep "+b)...); len(left) == 0 {
					break
				}
			}
			for _, l := range left {
				t.Errorf("still running after the hook timed out: %s", l)
			}
			if m.noCgroup {
				return
			}
			// Another hook's cgroup may be empty for a moment (made, not yet
			// joined; or killed, not yet removed): only one that stays counts.
			var stale []string
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				stale = stale[:0]
				for name := range runCgroups() {
					if !before[name] && !othersRunning(name) {
						stale = append(stale, name)
					}
				}
				if len(stale) == 0 {
					break
				}
			}
			for _, name := range stale {
				t.Errorf("the hook's cgroup %s was left behind", name)
			}
		})
	}
}

// runCgroups lists the hook cgroups under the cgroup root.
func runCgroups() map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(cgroupRoot())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "slipway-run-") {
			out[e.Name()] = true
		}
	}
	return out
}

// othersRunning reports whether a hook cgroup still has processes: a hook of
// another test that is running now, not one this test left behind.
func othersRunning(name string) bool {
	b, err := os.ReadFile(filepath.Join(cgroupRoot(), name, "cgroup.procs"))
	return err == nil && len(strings.TrimSpace(string(b))) > 0
}
