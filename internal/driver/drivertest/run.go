package drivertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// runSpec is a hook running the test app with args.
func (s *suite) runSpec(img driver.Image, key string, args ...string) (driver.RunSpec, *syncBuffer, *syncBuffer) {
	var stdout, stderr syncBuffer
	return driver.RunSpec{
		Image:   img,
		Name:    fmt.Sprintf("%s-hook-%d", s.project, s.n.Add(1)),
		Cmd:     append([]string{testapp.Path}, args...),
		Env:     map[string]string{},
		DataKey: key,
		Labels:  driver.ManagedLabels(s.project, "store", "web", "hooks", "hook"),
		Stdout:  &stdout,
		Stderr:  &stderr,
	}, &stdout, &stderr
}

func run(t *testing.T, d driver.Driver, spec driver.RunSpec) int {
	t.Helper()
	code, err := d.Run(ctxFor(t, opTimeout), spec)
	if err != nil {
		t.Fatalf("Run(%q): %v", spec.Cmd, err)
	}
	return code
}

func (s *suite) testRun(t *testing.T) {
	d := s.h.NewDriver(t)
	for _, want := range []int{0, 7} {
		spec, stdout, stderr := s.runSpec(s.app, "", "exit", fmt.Sprint(want))
		if code := run(t, d, spec); code != want {
			t.Errorf("Run(exit %d) = %d", want, code)
		}
		if !strings.Contains(stdout.String(), "testapp stdout line") || strings.Contains(stdout.String(), "stderr") {
			t.Errorf("Run stdout = %q, want just the stdout line", stdout.String())
		}
		if !strings.Contains(stderr.String(), "testapp stderr line") || strings.Contains(stderr.String(), "stdout") {
			t.Errorf("Run stderr = %q, want just the stderr line", stderr.String())
		}
	}

	// One writer for both streams.
	spec, both, _ := s.runSpec(s.app, "", "exit", "0")
	spec.Stderr = spec.Stdout
	run(t, d, spec)
	if out := both.String(); !strings.Contains(out, "testapp stdout line") || !strings.Contains(out, "testapp stderr line") {
		t.Errorf("Run with Stdout == Stderr: %q, want both lines", out)
	}

	// Nowhere to write to.
	spec, _, _ = s.runSpec(s.app, "", "exit", "4")
	spec.Stdout, spec.Stderr = nil, nil
	if code := run(t, d, spec); code != 4 {
		t.Errorf("Run without writers = %d, want 4", code)
	}

	value := `hook value with 'quotes' and $DOLLAR`
	spec, stdout, _ := s.runSpec(s.app, "", "env", "HOOK_VAR")
	spec.Env["HOOK_VAR"] = value
	if code := run(t, d, spec); code != 0 {
		t.Errorf("Run(env) = %d", code)
	}
	if got := strings.TrimSuffix(stdout.String(), "\n"); got != value {
		t.Errorf("hook saw HOOK_VAR = %q, want %q", got, value)
	}
	spec, stdout, _ = s.runSpec(s.app, "", "env", "TESTAPP_MARKER")
	run(t, d, spec)
	if got := strings.TrimSpace(stdout.String()); got != "release-a" {
		t.Errorf("hook saw the image's TESTAPP_MARKER = %q, want release-a", got)
	}
}

func (s *suite) testRunShell(t *testing.T) {
	s.shellOnce.Do(func() {
		base := testenv.BusyboxImage(t)
		if base == nil {
			return
		}
		s.shell = s.h.Publish(t, testapp.Image(t, testapp.Options{GOOS: s.h.AppGOOS, Base: base, Env: map[string]string{"TESTAPP_MARKER": "release-shell"}}))
	})
	if s.shell.Ref == "" {
		t.Skip("no image with a shell (needs a static busybox)")
	}
	d := s.h.NewDriver(t)
	var stdout, stderr syncBuffer
	code, err := d.Run(ctxFor(t, opTimeout), driver.RunSpec{
		Image:  s.shell,
		Name:   fmt.Sprintf("%s-hook-%d", s.project, s.n.Add(1)),
		Cmd:    []string{`echo "shell says $HOOK_VAR in $(pwd)";`, "echo to-stderr >&2;", "exit 5"},
		Shell:  true,
		Env:    map[string]string{"HOOK_VAR": "hi there"},
		Stdout: &stdout,
		Stderr: &stderr,
	})
	if err != nil {
		t.Fatalf("Run with Shell: %v", err)
	}
	if code != 5 {
		t.Errorf("Run with Shell = %d, want 5", code)
	}
	out := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(out, "shell says hi there in ") || !strings.HasSuffix(out, testapp.WorkDir) {
		t.Errorf("Run with Shell printed %q, want HOOK_VAR and the image's working directory %s", out, testapp.WorkDir)
	}
	if got := strings.TrimSpace(stderr.String()); got != "to-stderr" {
		t.Errorf("Run with Shell stderr = %q", got)
	}
}

func (s *suite) testRunData(t *testing.T) {
	d := s.h.NewDriver(t)
	key, other := s.project+"-hookdata", s.project+"-hookdata-other"
	value := "written-by-hook-" + randHex(3)

	spec, _, stderr := s.runSpec(s.app, key, "write", "hook.txt", value)
	if code := run(t, d, spec); code != 0 {
		t.Fatalf("hook writing to the data dir = %d; stderr %q", code, stderr.String())
	}
	spec, stdout, _ := s.runSpec(s.appB, key, "cat", "hook.txt")
	if code := run(t, d, spec); code != 0 || stdout.String() != value {
		t.Errorf("another release's hook with the same DataKey read %q (exit %d), want %q", stdout.String(), code, value)
	}
	spec, _, _ = s.runSpec(s.app, other, "cat", "hook.txt")
	if code := run(t, d, spec); code == 0 {
		t.Errorf("a hook with another DataKey read the file")
	}

	app := s.spec(s.app, "hookdata")
	app.DataKey = key
	inst := start(t, d, app)
	if got := mustGet(t, inst.Addr, "/file?name=hook.txt"); got != value {
		t.Errorf("the app read %q from the data dir, want %q", got, value)
	}
	app = s.spec(s.app, "hookdata")
	app.DataKey = other
	inst2 := start(t, d, app)
	if code, body, err := get(inst2.Addr, "/file?name=hook.txt"); err != nil || code != http.StatusNotFound {
		t.Errorf("an app with another DataKey: %d %q %v, want 404", code, body, err)
	}
}

// readyWriter closes ready when "ready" is written.
type readyWriter struct {
	syncBuffer
	ready chan struct{}
	once  sync.Once
}

func (w *readyWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), "ready") {
		w.once.Do(func() { close(w.ready) })
	}
	return n, err
}

func (s *suite) testRunCancel(t *testing.T) {
	d := s.h.NewDriver(t)
	key := s.project + "-tick"
	app := s.spec(s.app, "tick")
	app.DataKey = key
	inst := start(t, d, app)

	spec, _, stderr := s.runSpec(s.app, key, "tick", "tick")
	out := &readyWriter{ready: make(chan struct{})}
	spec.Stdout = out
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := d.Run(ctx, spec)
		done <- result{code, err}
	}()
	select {
	case <-out.ready:
	case r := <-done:
		t.Fatalf("the tick hook ended early: %d %v; stderr %q", r.code, r.err, stderr.String())
	case <-time.After(opTimeout):
		t.Fatalf("the tick hook did not get ready; stdout %q stderr %q", out.String(), stderr.String())
	}
	select {
	case r := <-done:
		t.Fatalf("the tick hook ended by itself: %d %v; stderr %q", r.code, r.err, stderr.String())
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case r := <-done:
		t.Logf("Run after cancel: %d, %v", r.code, r.err)
		if r.err == nil && r.code == 0 {
			t.Errorf("Run after cancel = 0, nil; want an error or a non-zero code")
		}
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			t.Errorf("Run after cancel: %v, want it to wrap context.Canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return within 10s of cancel")
	}

	time.Sleep(200 * time.Millisecond)
	before := mustGet(t, inst.Addr, "/file?name=tick")
	time.Sleep(400 * time.Millisecond)
	if after := mustGet(t, inst.Addr, "/file?name=tick"); after != before {
		t.Errorf("the hook's child still runs after cancel: tick went from %s to %s", before, after)
	}
}

func (s *suite) testWaitCrash(t *testing.T) {
	d := s.h.NewDriver(t)
	if _, ok := d.(driver.Waiter); !ok {
		t.Skip("not a Waiter")
	}
	inst := start(t, d, s.spec(s.app, "crash"))
	waited := waitAsync(d, inst.ID)

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var logs syncBuffer
	logsDone := make(chan error, 1)
	go func() { logsDone <- d.Logs(ctx, inst.ID, &logs, true) }()
	time.Sleep(100 * time.Millisecond)

	mustGet(t, inst.Addr, "/crash")
	expectExit(t, waited, 3)
	select {
	case err := <-logsDone:
		if err != nil {
			t.Errorf("following Logs ended with %v when the instance exited", err)
		}
		if !strings.Contains(logs.String(), "crashing with status 3") {
			t.Errorf("following Logs missed the last line; got:\n%s", logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("following Logs did not return within 10s of the instance's exit")
	}

	if !d.Capabilities().Restart {
		var in driver.Instance
		ok := waitFor(5*time.Second, func() bool {
			var found bool
			in, found = find(list(t, d, s.match("crash")), inst.ID)
			return found && in.State == "exited"
		})
		if !ok || in.ExitCode != 3 {
			t.Errorf("List after the crash: %+v (found %v), want State exited, ExitCode 3", in, ok)
		}
	}
	if err := d.Stop(ctxFor(t, opTimeout), inst.ID); err != nil {
		t.Errorf("Stop of an exited instance: %v", err)
	}
	if _, ok := find(list(t, d, s.match("crash")), inst.ID); ok {
		t.Errorf("a stopped instance is still listed")
	}
}

func (s *suite) testPrune(t *testing.T) {
	d := s.h.NewDriver(t)
	p, ok := d.(driver.Pruner)
	if !ok {
		t.Skip("not a Pruner")
	}
	digA, digB := digestOf(t, s.app), digestOf(t, s.appB)
	a := start(t, d, s.spec(s.app, "prune-a"))
	b := start(t, d, s.spec(s.appB, "prune-b"))

	removed, err := p.Prune(ctxFor(t, opTimeout), []string{digA})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if mentions(removed, digA) || mentions(removed, digB) {
		t.Errorf("Prune(keep A) with A and B running removed %q", removed)
	}
	mustGet(t, a.Addr, "/healthz")
	mustGet(t, b.Addr, "/healthz")

	if err := d.Stop(ctxFor(t, opTimeout), b.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	removed, err = p.Prune(ctxFor(t, opTimeout), []string{digA})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if !mentions(removed, digB) || mentions(removed, digA) {
		t.Errorf("Prune(keep A) after B stopped removed %q, want B's %s and not A's", removed, digB)
	}
	mustGet(t, a.Addr, "/healthz")
	start(t, d, s.spec(s.appB, "prune-b")) // fetched again
	a2 := start(t, d, s.spec(s.app, "prune-a"))
	mustGet(t, a2.Addr, "/healthz")
}

func (s *suite) testReopen(t *testing.T) {
	if s.h.Reopen == nil {
		t.Skip("the harness has no Reopen")
	}
	a := s.h.NewDriver(t)
	spec := s.spec(s.app, "reopen")
	spec.StopTimeout = 2 * time.Second
	inst := start(t, a, spec)
	b := s.h.Reopen(t, a)

	got, ok := find(list(t, b, s.match("reopen")), inst.ID)
	if !ok {
		t.Fatalf("the reopened driver does not list %s", inst.ID)
	}
	if got.Addr != inst.Addr || got.Name != inst.Name || got.State != "running" || got.Labels[driver.LabelStore] != "store" {
		t.Errorf("the reopened driver lists %+v; started as %+v", got, inst)
	}
	m := "mark-" + randHex(4)
	mustGet(t, inst.Addr, "/healthz?mark="+m)
	if !waitFor(5*time.Second, func() bool {
		var buf syncBuffer
		b.Logs(ctxFor(t, opTimeout), inst.ID, &buf, false)
		return strings.Contains(buf.String(), m)
	}) {
		t.Errorf("the reopened driver's Logs lack %q", m)
	}
	waited := waitAsync(b, inst.ID)
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if err := b.Stop(ctxFor(t, opTimeout), inst.ID); err != nil {
		t.Fatalf("Stop through the reopened driver: %v", err)
	}
	if took := time.Since(t0); took > spec.StopTimeout-200*time.Millisecond {
		t.Errorf("Stop through the reopened driver took %s: it did not notice the graceful exit", took)
	}
	// The exit code of a process the reopened driver did not start may be
	// unknown (the process runtime reports -1); only the return is checked.
	if waited != nil {
		select {
		case r := <-waited:
			if r.err != nil {
				t.Errorf("Wait through the reopened driver: %v", r.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Wait through the reopened driver did not return within 10s of Stop")
		}
	}
	waitGone(t, inst.Addr)
	if _, ok := find(list(t, a, s.match("reopen")), inst.ID); ok {
		t.Errorf("the first driver still lists the instance the reopened one stopped")
	}
}
