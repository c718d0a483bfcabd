package docker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// Stats reports the container's memory; TimedLogs gives its lines with the
// engine's timestamps and honours since.
func TestStatsAndTimedLogs(t *testing.T) {
	e := newDriver(t)
	if e == nil {
		return
	}
	ctx := context.Background()
	inst := e.start(e.spec(e.push("app", "stats", nil), "r1"))
	before := time.Now().Add(-time.Minute)
	get(t, inst.Addr, "/healthz?mark=one")
	s, err := e.d.Stats(ctx, inst.ID)
	if err != nil || s.MemoryBytes <= 0 {
		t.Errorf("Stats: %+v %v", s, err)
	}
	var lines []driver.LogLine
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		lines = nil
		if err := e.d.TimedLogs(ctx, inst.ID, time.Time{}, false, func(l driver.LogLine) { lines = append(lines, l) }); err != nil {
			t.Fatal(err)
		}
		if len(lines) > 0 && strings.Contains(lines[len(lines)-1].Text, "mark=one") {
			break
		}
	}
	if len(lines) == 0 || !strings.Contains(lines[len(lines)-1].Text, "mark=one") {
		t.Fatalf("TimedLogs: %+v", lines)
	}
	last := lines[len(lines)-1]
	if last.Time.Before(before) || last.Time.After(time.Now().Add(time.Minute)) {
		t.Errorf("line stamped %s", last.Time)
	}
	var after []driver.LogLine
	e.d.TimedLogs(ctx, inst.ID, last.Time, false, func(l driver.LogLine) { after = append(after, l) })
	for _, l := range after {
		if !l.Time.After(last.Time) {
			t.Errorf("since %s gave a line of %s", last.Time, l.Time)
		}
	}
}
