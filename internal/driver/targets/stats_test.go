package targets

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// statsFake reports memory and stamped logs, as the docker and swarm drivers do.
type statsFake struct{ fake }

func (f *statsFake) Stats(_ context.Context, id string) (driver.Stats, error) {
	if _, ok := f.insts[id]; !ok {
		return driver.Stats{}, driver.ErrNotFound
	}
	return driver.Stats{MemoryBytes: 42 << 20}, nil
}

func (f *statsFake) TimedLogs(_ context.Context, id string, _ time.Time, _ bool, fn func(driver.LogLine)) error {
	fn(driver.LogLine{Time: time.Unix(1, 0), Text: "stamped " + id})
	return nil
}

// plainFake only has plain logs.
type plainFake struct{ fake }

func (f *plainFake) Logs(_ context.Context, _ string, w io.Writer, _ bool) error {
	io.WriteString(w, "one\ntwo\n")
	return nil
}

// ps and logs see through the targets driver to the runtime's optional interfaces.
func TestStatsAndTimedLogsReachTheTarget(t *testing.T) {
	sw := &statsFake{fake{name: "swarm", insts: map[string]driver.Instance{}}}
	pl := &plainFake{fake{name: "process", insts: map[string]driver.Instance{}}}
	d := New([]string{"us", "default"}, "default",
		map[string]driver.Capabilities{"us": {Name: "swarm"}, "default": {Name: "process"}},
		func(_ context.Context, name string) (driver.Driver, error) {
			if name == "us" {
				return sw, nil
			}
			return pl, nil
		},
		func(store string) (string, error) { return map[string]string{"us": "us", "ap": "default"}[store], nil })
	ctx := context.Background()
	a, err := d.Start(ctx, driver.Spec{Name: "us-web", Labels: driver.ManagedLabels("p", "us", "web", "r1", "web")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Stats(ctx, a.ID)
	if err != nil || s.MemoryBytes != 42<<20 {
		t.Errorf("Stats through targets: %+v %v", s, err)
	}
	var lines []driver.LogLine
	d.TimedLogs(ctx, a.ID, time.Time{}, false, func(l driver.LogLine) { lines = append(lines, l) })
	if len(lines) != 1 || !strings.HasPrefix(lines[0].Text, "stamped ") || lines[0].Time.IsZero() {
		t.Errorf("TimedLogs through targets: %+v", lines)
	}

	b, err := d.Start(ctx, driver.Spec{Name: "ap-web", Labels: driver.ManagedLabels("p", "ap", "web", "r1", "web")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stats(ctx, b.ID); err == nil {
		t.Errorf("Stats of a runtime without them succeeded")
	}
	lines = nil
	d.TimedLogs(ctx, b.ID, time.Time{}, false, func(l driver.LogLine) { lines = append(lines, l) })
	if len(lines) != 2 || lines[0].Text != "one" || lines[1].Text != "two" {
		t.Errorf("plain logs through TimedLogs: %+v", lines)
	}
	lines = nil
	d.TimedLogs(ctx, b.ID, time.Time{}, true, func(l driver.LogLine) { lines = append(lines, l) })
	if len(lines) != 0 {
		t.Errorf("following plain logs gave %+v, want nothing (untimed lines cannot be followed)", lines)
	}
}
