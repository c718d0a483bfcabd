package targets

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

var (
	_ driver.StatsReader = (*Driver)(nil)
	_ driver.TimedLogger = (*Driver)(nil)
)

// errUnsupported: the target's runtime does not offer the optional interface.
var errUnsupported = errors.New("not offered by this target's runtime")

// Stats asks the instance's target, when its runtime reports resource use.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	t, inner := d.split(id)
	dr, err := d.Target(ctx, t)
	if err != nil {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	sr, ok := dr.(driver.StatsReader)
	if !ok {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, errUnsupported)
	}
	return sr.Stats(ctx, inner)
}

// TimedLogs asks the instance's target for stamped lines; a runtime without
// them gives its plain lines with the zero time, and cannot follow (lines
// without a time cannot be told apart from those already sent).
func (d *Driver) TimedLogs(ctx context.Context, id string, since time.Time, follow bool, fn func(driver.LogLine)) error {
	t, inner := d.split(id)
	dr, err := d.Target(ctx, t)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if tl, ok := dr.(driver.TimedLogger); ok {
		return tl.TimedLogs(ctx, inner, since, follow, fn)
	}
	if follow {
		return nil
	}
	w := &lineFunc{fn: func(s string) { fn(driver.LogLine{Text: s}) }}
	err = dr.Logs(ctx, inner, w, follow)
	w.flush()
	return err
}

// lineFunc calls fn for each line written to it.
type lineFunc struct {
	fn  func(string)
	buf []byte
}

func (l *lineFunc) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := indexNL(l.buf)
		if i < 0 {
			return len(p), nil
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineFunc) flush() {
	if len(l.buf) > 0 {
		l.fn(string(l.buf))
		l.buf = nil
	}
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}
