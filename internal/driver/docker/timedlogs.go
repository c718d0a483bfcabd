package docker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
)

var _ driver.TimedLogger = (*Driver)(nil)

// TimedLogs reads the container's output with its timestamps: from the
// driver's own log (WithLogDir), stored redacted, else from the engine's log
// driver, which stores it unredacted (Slipway redacts when it reads it).
func (d *Driver) TimedLogs(ctx context.Context, id string, since time.Time, follow bool, fn func(driver.LogLine)) error {
	if d.ownLog(ctx, id) {
		return d.readLog(ctx, id, follow, func(line string) {
			if t, text := parseLogStamp(line); since.IsZero() || t.After(since) {
				fn(driver.LogLine{Time: t, Text: text})
			}
		})
	}
	o := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Timestamps: true}
	if !since.IsZero() {
		o.Since = since.Add(time.Nanosecond).Format(time.RFC3339Nano)
	}
	rc, err := d.cli.ContainerLogs(ctx, id, o)
	if isNotFound(err) {
		return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		stamp, text, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			t, text = time.Time{}, sc.Text()
		}
		fn(driver.LogLine{Time: t, Text: text})
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	return nil
}
