package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/redact"
)

// With a log directory (WithLogDir) the engine stores no output at all: web
// containers get the "none" log driver, and the driver itself attaches to
// each one (before it starts, so nothing is missed) and appends its output,
// secrets replaced with [REDACTED] and each line stamped, to DIR/<id>.log.
// The engine's own json-file log under its data root would otherwise hold
// whatever an app printed, secrets included, in clear.
//
// A container the engine restarts (restart policy) is attached again as soon
// as it runs (an events stream says when); output it prints before that, a
// few milliseconds at most, is lost. After Slipway itself restarts, New
// attaches to every running container it owns before it returns; output
// printed while no Slipway was attached is lost, since the engine kept none.
// The secrets to redact are found again through LabelSecretKeys.

// LabelSecretKeys is set on web containers when the driver keeps their
// output: the names (comma-separated) of the env keys whose values are
// secret, so that a driver started later can redact them again. Names only;
// the values are in the container's env, where the engine keeps them anyway.
const LabelSecretKeys = "dev.slipway.secretkeys"

// DefaultLogLimit bounds an instance log before it is rotated to <id>.log.1.
const DefaultLogLimit = 10 << 20

// LogDriverNone is the engine log driver that stores nothing.
const LogDriverNone = "none"

// logStampLayout is the fixed-width UTC time at the start of every stored line.
const logStampLayout = "2006-01-02T15:04:05.000000000Z"

// maxLogLine bounds a stored line; longer output is split.
const maxLogLine = 64 << 10

// WithLogDir makes the driver keep web containers' output itself, redacted,
// in dir (created 0700; files 0600) instead of letting the engine store it.
// The default is none: the engine's log driver stores it, unredacted.
func WithLogDir(dir string) Option {
	return func(o *options) { o.logDir = dir }
}

// captures are the running attachments of one driver.
type captures struct {
	dir   string
	limit int64
	ctx   context.Context
	stop  context.CancelFunc
	mu    sync.Mutex
	byID  map[string]*capture
}

// capture is one container's attachment, for as long as the container exists.
type capture struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newCaptures(dir string) (*captures, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("docker driver: log directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("docker driver: log directory: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &captures{dir: dir, limit: DefaultLogLimit, ctx: ctx, stop: stop, byID: map[string]*capture{}}, nil
}

func (c *captures) path(id string) string { return filepath.Join(c.dir, id+".log") }

// close ends every attachment (the containers keep running).
func (c *captures) close() {
	c.stop()
	c.mu.Lock()
	all := make([]*capture, 0, len(c.byID))
	for _, cp := range c.byID {
		all = append(all, cp)
	}
	c.mu.Unlock()
	for _, cp := range all {
		<-cp.done
	}
}

// begin starts keeping id's output, from att when given, else from the next
// attachment. A container already kept is left as it is.
func (c *captures) begin(id string, red *redact.Redactor, att *client.HijackedResponse, reattach func(context.Context, string) *client.HijackedResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; ok || c.ctx.Err() != nil {
		if att != nil {
			att.Close()
		}
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	cp := &capture{cancel: cancel, done: make(chan struct{})}
	c.byID[id] = cp
	go func() {
		defer close(cp.done)
		defer c.drop(id, cp)
		c.run(ctx, id, red, att, reattach)
	}()
}

func (c *captures) drop(id string, cp *capture) {
	c.mu.Lock()
	if c.byID[id] == cp {
		delete(c.byID, id)
	}
	c.mu.Unlock()
}

// forget ends id's attachment and removes its log (the container is gone).
func (c *captures) forget(id string) {
	c.mu.Lock()
	cp := c.byID[id]
	c.mu.Unlock()
	if cp != nil {
		cp.cancel()
		<-cp.done
	}
	os.Remove(c.path(id))
	os.Remove(c.path(id) + ".1")
}

// run copies id's output to its log until the container is gone or ctx ends.
func (c *captures) run(ctx context.Context, id string, red *redact.Redactor, att *client.HijackedResponse, reattach func(context.Context, string) *client.HijackedResponse) {
	lf := &logFile{path: c.path(id), limit: c.limit, red: red}
	defer lf.close()
	for {
		if att == nil {
			if att = reattach(ctx, id); att == nil {
				return
			}
		}
		began := time.Now()
		lf.copyFrom(ctx, att)
		att = nil
		// An attachment that ends at once (the container stopped between
		// the inspect and the attach) must not spin.
		if time.Since(began) < 100*time.Millisecond {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// attach opens an output stream of a created or running container.
func (d *Driver) attach(ctx context.Context, id string) (*client.HijackedResponse, error) {
	res, err := d.cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return nil, err
	}
	return &res.HijackedResponse, nil
}

// reattach waits until the container runs and attaches to it; nil when it
// is gone or ctx ended. The events stream is opened before the inspect, so
// a start in between is not missed.
func (d *Driver) reattach(ctx context.Context, id string) *client.HijackedResponse {
	for ctx.Err() == nil {
		ectx, cancel := context.WithCancel(ctx)
		f := make(client.Filters).Add("type", "container").Add("container", id).Add("event", "start").Add("event", "destroy")
		ev := d.cli.Events(ectx, client.EventsListOptions{Filters: f})
		res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		switch {
		case isNotFound(err):
			cancel()
			return nil
		case err == nil && res.Container.State != nil && res.Container.State.Running && !res.Container.State.Restarting:
			att, err := d.attach(ctx, id)
			cancel()
			if err == nil {
				return att
			}
			if isNotFound(err) {
				return nil
			}
			sleepCtx(ctx, time.Second)
			continue
		case err != nil:
			cancel()
			sleepCtx(ctx, time.Second)
			continue
		}
		select {
		case <-ev.Messages: // started or destroyed: look again
		case <-ev.Err: // the stream broke (engine restart?): look again soon
			sleepCtx(ctx, time.Second)
		case <-ctx.Done():
		}
		cancel()
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// resumeCaptures attaches to the web containers this driver owns (after a
// restart of Slipway) and removes logs of containers that no longer exist.
func (d *Driver) resumeCaptures(ctx context.Context) {
	f := make(client.Filters).Add("label", driver.LabelManaged+"=true").Add("label", driver.LabelRole+"=web")
	for k, v := range d.opts.labels {
		f.Add("label", k+"="+v)
	}
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return // logs of gone containers stay until the next start
	}
	live := map[string]bool{}
	for _, s := range res.Items {
		live[s.ID] = true
		ir, err := d.cli.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
		if err != nil || ir.Container.Config == nil {
			continue
		}
		if ir.Container.HostConfig != nil && ir.Container.HostConfig.LogConfig.Type != LogDriverNone {
			continue // started by a driver that let the engine keep its output
		}
		// A running container is attached before New returns, so output
		// printed once the driver is back is kept; attaching in the
		// capture's goroutine left a gap in which lines were lost.
		var att *client.HijackedResponse
		if st := ir.Container.State; st != nil && st.Running && !st.Restarting {
			if a, err := d.attach(ctx, s.ID); err == nil {
				att = a
			}
		}
		d.cap.begin(s.ID, redactorFor(ir.Container.Config), att, d.reattach)
	}
	entries, _ := os.ReadDir(d.cap.dir)
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		if strings.Contains(e.Name(), ".log") && !live[id] {
			os.Remove(filepath.Join(d.cap.dir, e.Name()))
		}
	}
}

// redactorFor rebuilds a container's redactor from LabelSecretKeys and its env.
func redactorFor(cfg *container.Config) *redact.Redactor {
	var values []string
	for _, k := range strings.Split(cfg.Labels[LabelSecretKeys], ",") {
		if v := envValue(cfg.Env, k); k != "" && v != "" {
			values = append(values, v)
		}
	}
	return redact.New(secretLines(values)...)
}

// secretKeys names the env keys whose values are secrets, for LabelSecretKeys.
func secretKeys(env map[string]string, secrets []string) string {
	var keys []string
	for k, v := range env {
		for _, s := range secrets {
			if v == s && v != "" {
				keys = append(keys, k)
				break
			}
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// secretLines adds each line of a multi-line secret, since output is
// redacted a line at a time.
func secretLines(values []string) []string {
	out := append([]string(nil), values...)
	for _, v := range values {
		if strings.ContainsAny(v, "\r\n") {
			out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' })...)
		}
	}
	return out
}

// logFile is one instance log being written.
type logFile struct {
	path  string
	limit int64
	red   *redact.Redactor
	mu    sync.Mutex
	f     *os.File
	size  int64
}

// copyFrom writes one attachment's output until it ends or ctx does.
func (l *logFile) copyFrom(ctx context.Context, att *client.HijackedResponse) {
	stopClose := context.AfterFunc(ctx, att.Close)
	defer stopClose()
	defer att.Close()
	out, errw := &lineSplitter{emit: l.line}, &lineSplitter{emit: l.line}
	stdcopy.StdCopy(out, errw, att.Reader)
	out.flush()
	errw.flush()
}

// line stores one line, redacted and stamped; a write error drops it (the
// app must never block on its log).
func (l *logFile) line(text []byte) {
	var b []byte
	b = append(b, time.Now().UTC().Format(logStampLayout)...)
	b = append(b, ' ')
	b = append(b, l.red.String(string(text))...)
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.size > l.limit {
		if l.f != nil {
			l.f.Close()
			l.f = nil
			os.Rename(l.path, l.path+".1")
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return
		}
		l.f, l.size = f, fi.Size()
	}
	n, _ := l.f.Write(b)
	l.size += int64(n)
}

func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// lineSplitter passes every complete line written to it to emit (without
// its newline), splitting lines longer than maxLogLine.
type lineSplitter struct {
	emit func([]byte)
	buf  []byte
}

func (s *lineSplitter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			if len(s.buf) >= maxLogLine {
				s.emit(s.buf[:maxLogLine])
				s.buf = append(s.buf[:0], s.buf[maxLogLine:]...)
				continue
			}
			return len(p), nil
		}
		s.emit(bytes.TrimSuffix(s.buf[:i], []byte("\r")))
		s.buf = append(s.buf[:0], s.buf[i+1:]...)
	}
}

func (s *lineSplitter) flush() {
	if len(s.buf) > 0 {
		s.emit(s.buf)
		s.buf = nil
	}
}

// parseLogStamp splits a stored line into its time and text.
func parseLogStamp(line string) (time.Time, string) {
	if len(line) > len(logStampLayout) && line[len(logStampLayout)] == ' ' {
		if t, err := time.Parse(logStampLayout, line[:len(logStampLayout)]); err == nil {
			return t, line[len(logStampLayout)+1:]
		}
	}
	return time.Time{}, line
}

// ownLog reports whether id's output is in the driver's log: a container
// started by a driver without a log dir (before an upgrade) still has its
// output in the engine's log driver.
func (d *Driver) ownLog(ctx context.Context, id string) bool {
	if d.cap == nil {
		return false
	}
	if _, err := os.Stat(d.cap.path(id)); err == nil {
		return true
	}
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	return err != nil || res.Container.HostConfig == nil || res.Container.HostConfig.LogConfig.Type == LogDriverNone
}

// readLog calls fn for every stored line of id (the rotated file first);
// with follow it goes on with new lines until ctx ends or the container is
// no longer running (gone, or exited without a restart coming).
func (d *Driver) readLog(ctx context.Context, id string, follow bool, fn func(string)) error {
	p := d.cap.path(id)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if _, ierr := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); isNotFound(ierr) {
			return fmt.Errorf("logs of %s: %w", id, driver.ErrNotFound)
		}
	}
	ls := &lineSplitter{emit: func(b []byte) { fn(string(b)) }}
	if err := copyPath(ls, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	t := &tail{path: p, w: ls}
	if err := t.copy(); err != nil {
		return fmt.Errorf("logs of %s: %w", id, err)
	}
	defer t.close()
	if !follow {
		ls.flush()
		return nil
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	checked := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := t.copy(); err != nil {
			return fmt.Errorf("logs of %s: %w", id, err)
		}
		if time.Since(checked) < time.Second {
			continue
		}
		checked = time.Now()
		res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if isNotFound(err) || (err == nil && res.Container.State != nil && !res.Container.State.Running && !res.Container.State.Restarting) {
			time.Sleep(100 * time.Millisecond) // its last words may still be on the way
			t.copy()
			ls.flush()
			return nil
		}
	}
}

// tail reads a log file that grows and may be rotated (renamed) under it.
type tail struct {
	path string
	w    io.Writer
	f    *os.File
	off  int64
}

func (t *tail) copy() error {
	for {
		if t.f == nil {
			f, err := os.Open(t.path)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			t.f, t.off = f, 0
		}
		n, err := io.Copy(t.w, io.NewSectionReader(t.f, t.off, 1<<62))
		t.off += n
		if err != nil {
			return err
		}
		cur, err1 := os.Stat(t.path)
		mine, err2 := t.f.Stat()
		if err1 == nil && err2 == nil && os.SameFile(cur, mine) {
			return nil
		}
		// Rotated, or removed: what was left of the old file is read; go
		// on with the new one, if any.
		t.f.Close()
		t.f = nil
		if err1 != nil {
			return nil
		}
	}
}

func (t *tail) close() {
	if t.f != nil {
		t.f.Close()
	}
}

func copyPath(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
