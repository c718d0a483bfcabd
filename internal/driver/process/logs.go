package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// rotateLog moves the log aside when it has grown past the limit. The
// process keeps writing to its descriptor (opened O_APPEND), so the file is
// copied and truncated rather than renamed; lines written between the copy
// and the truncation are lost, which bounds the disk used without
// signalling the app.
func (d *Driver) rotateLog(id string) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	p := d.logPath(id)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() <= d.o.logLimit {
		return
	}
	src, err := os.Open(p)
	if err != nil {
		return
	}
	defer src.Close()
	tmp, err := os.CreateTemp(d.instancesDir(), ".tmp-"+id+".log-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	// Keep the newest logLimit bytes.
	if _, err := src.Seek(fi.Size()-d.o.logLimit, io.SeekStart); err != nil {
		return
	}
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return
	}
	if os.Rename(tmp.Name(), p+".1") == nil {
		os.Truncate(p, 0)
	}
}

// Logs writes the instance's captured stdout and stderr (the rotated file
// first) to w. With follow it then writes new output as it comes, until ctx
// ends (returning nil), the instance exits, or it is stopped.
func (d *Driver) Logs(ctx context.Context, id string, w io.Writer, follow bool) error {
	lw := &lineWriter{fn: func(line string) error {
		_, text := parseStamp(line)
		_, err := io.WriteString(w, text+"\n")
		return err
	}}
	err := d.copyLogs(ctx, id, lw, follow)
	lw.flush()
	return err
}

// TimedLogs calls fn for each stored line written after since, with its time
// (the zero time for a line stored without one); with follow it goes on
// like Logs.
func (d *Driver) TimedLogs(ctx context.Context, id string, since time.Time, follow bool, fn func(driver.LogLine)) error {
	lw := &lineWriter{fn: func(line string) error {
		t, text := parseStamp(line)
		if since.IsZero() || t.After(since) {
			fn(driver.LogLine{Time: t, Text: text})
		}
		return nil
	}}
	err := d.copyLogs(ctx, id, lw, follow)
	lw.flush()
	return err
}

var _ driver.TimedLogger = (*Driver)(nil)

// lineWriter calls fn for every complete line written to it; flush passes
// on what is left.
type lineWriter struct {
	fn  func(string) error
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := l.fn(string(l.buf[:i])); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.fn(string(l.buf))
		l.buf = nil
	}
}

// copyLogs writes the stored log as it is (stamps included).
func (d *Driver) copyLogs(ctx context.Context, id string, w io.Writer, follow bool) error {
	r, err := d.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	d.rotateLog(id)
	if err := copyFile(w, d.logPath(id)+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	f, err := os.Open(d.logPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // stopped meanwhile
	}
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer f.Close()
	off, err := io.Copy(w, f)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	if !follow || r.State != stateRunning {
		return nil
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done, _ := d.exited(wctx, r)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		finished := false
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			finished = true // copy what it wrote last, then stop
		case <-t.C:
		}
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("logs of %s: %w", id, err)
		}
		if fi.Size() < off { // rotated: the file was truncated
			off = 0
		}
		if fi.Size() > off {
			n, err := io.Copy(w, io.NewSectionReader(f, off, fi.Size()-off))
			off += n
			if err != nil {
				return fmt.Errorf("logs of %s: %w", id, err)
			}
		}
		if finished {
			return nil
		}
		if _, err := os.Stat(d.recordPath(id)); err != nil {
			return nil // stopped
		}
	}
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
