// Package drivertest is the conformance suite every Slipway driver passes.
//
// A driver's test calls Run with a Harness that makes fresh drivers and
// publishes images where they can fetch them. The suite runs the test app
// (internal/driver/testapp) and checks the contract of package driver,
// including what its doc leaves to this suite:
//
//   - Stop removes the instance: afterwards it is gone from List, and Logs
//     and Wait answer ErrNotFound. An instance that exits by itself stays in
//     List as "exited" with its exit code until it is stopped (unless the
//     runtime restarts it: Capabilities.Restart).
//   - Exit codes: a process killed by a signal reports 128+signal (SIGKILL
//     after the stop timeout: 137).
//   - Env reaches the app (image env, then spec env over it, plus PORT) and
//     never appears on any command line.
//   - RunSpec.Cmd is the whole argv (it replaces the image's entrypoint);
//     with Shell it is joined with spaces and run by /bin/sh -c.
//   - Logs with follow returns when ctx ends (nil or ctx's error) or when
//     the instance exits.
//   - Prune returns the digests ("sha256:…", possibly within a reference)
//     it removed, never one in keep or one a live instance uses.
//
// Every case bounds its waits, so a broken driver fails rather than hangs.
package drivertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
)

// Harness connects the suite to a driver.
type Harness struct {
	// NewDriver returns a fresh driver for one case; the case stops what
	// it starts, the harness cleans up the rest (t.Cleanup).
	NewDriver func(t *testing.T) driver.Driver
	// Publish makes img fetchable by the drivers NewDriver makes and returns
	// its digest reference.
	Publish func(t *testing.T, img v1.Image) driver.Image
	// Reopen, if set, returns a second driver on the same state as d, as
	// after `slipway serve` restarts; the suite checks it adopts d's instances.
	Reopen func(t *testing.T, d driver.Driver) driver.Driver
	// AppGOOS is the GOOS the test app is built for: "" means linux (for
	// containers); a runtime that runs images on the host passes runtime.GOOS.
	AppGOOS string
}

// Timeouts of the suite; generous so that a slow CI machine passes, short
// enough that a hang fails quickly.
const (
	startTimeout = 60 * time.Second // Start, including a first pull
	readyTimeout = 15 * time.Second // from Start until /healthz answers
	opTimeout    = 30 * time.Second // any other driver call
)

type suite struct {
	h       Harness
	project string
	app     driver.Image // TESTAPP_MARKER=release-a
	appB    driver.Image // TESTAPP_MARKER=release-b: another digest
	n       atomic.Int32

	shellOnce sync.Once
	shell     driver.Image
}

// Run runs the conformance suite against the harness's driver.
func Run(t *testing.T, h Harness) {
	if h.NewDriver == nil || h.Publish == nil {
		t.Fatal("drivertest: Harness needs NewDriver and Publish")
	}
	s := &suite{h: h, project: "dt" + randHex(5)}
	s.app = h.Publish(t, testapp.Image(t, testapp.Options{GOOS: h.AppGOOS, Env: map[string]string{
		"TESTAPP_MARKER": "release-a", "BOTH": "from-image",
	}}))
	s.appB = h.Publish(t, testapp.Image(t, testapp.Options{GOOS: h.AppGOOS, Env: map[string]string{
		"TESTAPP_MARKER": "release-b", "BOTH": "from-image",
	}}))

	t.Run("StartServesHealthz", s.testStart)
	t.Run("StartBadImage", s.testStartBadImage)
	t.Run("Env", s.testEnv)
	t.Run("Labels", s.testLabels)
	t.Run("TwoInstances", s.testTwoInstances)
	t.Run("StopGraceful", s.testStopGraceful)
	t.Run("StopKillsAfterTimeout", s.testStopKill)
	t.Run("StopUnknown", s.testStopUnknown)
	t.Run("Logs", s.testLogs)
	t.Run("PersistentData", s.testPersistentData)
	t.Run("Run", s.testRun)
	t.Run("RunShell", s.testRunShell)
	t.Run("RunData", s.testRunData)
	t.Run("RunCancelKillsChildren", s.testRunCancel)
	t.Run("WaitCrash", s.testWaitCrash)
	t.Run("Prune", s.testPrune)
	t.Run("Reopen", s.testReopen)
}

// --- helpers ---

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// spec returns a spec for img with labels unique to this case (release).
func (s *suite) spec(img driver.Image, release string) driver.Spec {
	n := s.n.Add(1)
	return driver.Spec{
		Image:       img,
		Name:        fmt.Sprintf("%s-%s-%d", s.project, release, n),
		Env:         map[string]string{},
		Port:        testapp.DefaultPort,
		Labels:      driver.ManagedLabels(s.project, "store", "web", release, "web"),
		StopTimeout: 5 * time.Second,
	}
}

func (s *suite) match(release string) map[string]string {
	return map[string]string{driver.LabelProject: s.project, driver.LabelRelease: release}
}

// start starts spec, stops it when the test ends, and waits for /healthz.
func start(t *testing.T, d driver.Driver, spec driver.Spec) driver.Instance {
	t.Helper()
	inst, err := d.Start(ctxFor(t, startTimeout), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", spec.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := d.Stop(ctx, inst.ID); err != nil {
			t.Errorf("cleanup: Stop(%s): %v", inst.ID, err)
		}
	})
	if inst.ID == "" || inst.Addr == "" {
		t.Fatalf("Start returned %+v: want an ID and an Addr", inst)
	}
	waitHealthy(t, inst)
	return inst
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func get(addr, path string) (int, string, error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustGet returns the body of a 200 answer.
func mustGet(t *testing.T, addr, path string) string {
	t.Helper()
	code, body, err := get(addr, path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", addr, path, code, body)
	}
	return body
}

func waitHealthy(t *testing.T, inst driver.Instance) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		code, _, err := get(inst.Addr, "/healthz")
		if err == nil && code == http.StatusOK {
			return
		}
		lastErr = err
		if err == nil {
			lastErr = fmt.Errorf("status %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("instance %s at %s not healthy within %s: %v", inst.ID, inst.Addr, readyTimeout, lastErr)
}

// waitGone waits until nothing answers at addr.
func waitGone(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := get(addr, "/healthz"); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%s still answers after Stop", addr)
}

func list(t *testing.T, d driver.Driver, match map[string]string) []driver.Instance {
	t.Helper()
	insts, err := d.List(ctxFor(t, opTimeout), match)
	if err != nil {
		t.Fatalf("List(%v): %v", match, err)
	}
	return insts
}

func find(insts []driver.Instance, id string) (driver.Instance, bool) {
	for _, in := range insts {
		if in.ID == id {
			return in, true
		}
	}
	return driver.Instance{}, false
}

// syncBuffer is a concurrency-safe buffer for output written while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// digestOf returns the sha256:<hex> an image reference pins.
func digestOf(t *testing.T, im driver.Image) string {
	t.Helper()
	i := strings.LastIndex(im.Ref, "@")
	if i < 0 {
		t.Fatalf("Publish returned %q: not a digest reference", im.Ref)
	}
	return im.Ref[i+1:]
}

func mentions(list []string, digest string) bool {
	for _, s := range list {
		if strings.Contains(s, digest) {
			return true
		}
	}
	return false
}

// cmdlinesWith returns the command lines on this host (Linux /proc) that
// contain s, other than this test's own. ok is false without /proc.
func cmdlinesWith(s string) (found []string, ok bool) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	self := strconv.Itoa(os.Getpid())
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(s)) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found, true
}

// --- cases ---

func (s *suite) testStart(t *testing.T) {
	d := s.h.NewDriver(t)
	caps := d.Capabilities()
	if caps.Name == "" || (caps.Isolation != "none" && caps.Isolation != "container") {
		t.Errorf("Capabilities() = %+v: want a Name and Isolation none or container", caps)
	}
	_, isWaiter := d.(driver.Waiter)
	_, isPruner := d.(driver.Pruner)
	if caps.Wait != isWaiter || caps.Prune != isPruner {
		t.Errorf("Capabilities say Wait=%v Prune=%v, but the driver implements Waiter=%v Pruner=%v", caps.Wait, caps.Prune, isWaiter, isPruner)
	}
	spec := s.spec(s.app, "start")
	t0 := time.Now()
	inst := start(t, d, spec)
	t.Logf("started and healthy in %s at %s", time.Since(t0).Round(time.Millisecond), inst.Addr)
	if inst.State != "running" {
		t.Errorf("Start returned State %q, want running", inst.State)
	}
	if inst.Name != spec.Name {
		t.Errorf("Start returned Name %q, want %q", inst.Name, spec.Name)
	}
	if got := mustGet(t, inst.Addr, "/release"); got != "release-a" {
		t.Errorf("/release = %q, want release-a (the image's env)", got)
	}
}

func (s *suite) testStartBadImage(t *testing.T) {
	d := s.h.NewDriver(t)
	bad := s.app
	bad.Ref = bad.Ref[:strings.LastIndex(bad.Ref, "@")+1] + "sha256:" + strings.Repeat("0", 64)
	spec := s.spec(bad, "bad-image")
	inst, err := d.Start(ctxFor(t, startTimeout), spec)
	if err == nil {
		d.Stop(ctxFor(t, opTimeout), inst.ID)
		t.Fatalf("Start of a missing image %s succeeded", bad.Ref)
	}
	t.Logf("Start of a missing image: %v", err)
	if got := list(t, d, s.match("bad-image")); len(got) != 0 {
		t.Errorf("List after a failed Start = %+v, want nothing", got)
	}
}

func (s *suite) testEnv(t *testing.T) {
	d := s.h.NewDriver(t)
	secret := "sk_live_" + randHex(16)
	tricky := `hello world 'single' "double" $HOME ; & | \ ` + "tab\tend"
	spec := s.spec(s.app, "env")
	spec.Env = map[string]string{"GREETING": tricky, "BOTH": "from-spec", "API_SECRET": secret}
	inst := start(t, d, spec)

	if got := mustGet(t, inst.Addr, "/env?k=GREETING"); got != tricky {
		t.Errorf("GREETING = %q, want %q", got, tricky)
	}
	if got := mustGet(t, inst.Addr, "/env?k=BOTH"); got != "from-spec" {
		t.Errorf("BOTH = %q: the spec's env must override the image's", got)
	}
	if got := mustGet(t, inst.Addr, "/env?k=TESTAPP_MARKER"); got != "release-a" {
		t.Errorf("TESTAPP_MARKER = %q: the image's env is missing", got)
	}
	if got := mustGet(t, inst.Addr, "/env?k=API_SECRET"); got != secret {
		t.Errorf("API_SECRET did not reach the app: %q", got)
	}
	port := mustGet(t, inst.Addr, "/env?k=PORT")
	_, addrPort, _ := net.SplitHostPort(inst.Addr)
	if _, err := strconv.Atoi(port); err != nil || (port != strconv.Itoa(spec.Port) && port != addrPort) {
		t.Errorf("PORT = %q: want the spec's port %d or the address's %s", port, spec.Port, addrPort)
	}

	if found, ok := cmdlinesWith(secret); !ok {
		t.Log("no /proc: command lines not checked")
	} else if len(found) > 0 {
		t.Errorf("the secret env value is on a command line: %q", found)
	}
	var logs syncBuffer
	if err := d.Logs(ctxFor(t, opTimeout), inst.ID, &logs, false); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret env value is in the logs")
	}
}

func (s *suite) testLabels(t *testing.T) {
	d := s.h.NewDriver(t)
	spec := s.spec(s.app, "labels")
	spec.Labels["dev.slipway.drivertest.extra"] = "a value with spaces"
	inst := start(t, d, spec)

	got := list(t, d, s.match("labels"))
	if len(got) != 1 || got[0].ID != inst.ID {
		t.Fatalf("List(project, release) = %+v, want just %s", got, inst.ID)
	}
	in := got[0]
	for k, v := range spec.Labels {
		if in.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, in.Labels[k], v)
		}
	}
	if in.Labels[driver.LabelManaged] != "true" {
		t.Errorf("label %s = %q, want true", driver.LabelManaged, in.Labels[driver.LabelManaged])
	}
	if in.Name != spec.Name || in.Addr != inst.Addr || in.State != "running" {
		t.Errorf("List gave %+v; Start gave %+v", in, inst)
	}
	if in.Started.IsZero() {
		t.Errorf("List gave no Started time")
	}
	if other := list(t, d, map[string]string{driver.LabelProject: s.project, driver.LabelRelease: "labels-other"}); len(other) != 0 {
		t.Errorf("List with a non-matching release = %+v, want nothing", other)
	}
	if _, ok := find(list(t, d, nil), inst.ID); !ok {
		t.Errorf("List(nil) does not include %s", inst.ID)
	}
}

func (s *suite) testTwoInstances(t *testing.T) {
	d := s.h.NewDriver(t)
	a := start(t, d, s.spec(s.app, "two"))
	b := start(t, d, s.spec(s.app, "two"))
	if a.ID == b.ID || a.Addr == b.Addr {
		t.Fatalf("two instances share ID or Addr: %+v %+v", a, b)
	}
	for _, in := range []driver.Instance{a, b} {
		if got := mustGet(t, in.Addr, "/release"); got != "release-a" {
			t.Errorf("%s: /release = %q", in.ID, got)
		}
	}
	got := list(t, d, s.match("two"))
	if _, ok := find(got, a.ID); !ok || len(got) != 2 {
		t.Errorf("List = %+v, want %s and %s", got, a.ID, b.ID)
	}
	if _, ok := find(got, b.ID); !ok {
		t.Errorf("List = %+v, want %s and %s", got, a.ID, b.ID)
	}
}

type waitResult struct {
	code int
	err  error
}

// waitAsync calls Wait in the background if the driver is a Waiter.
func waitAsync(d driver.Driver, id string) <-chan waitResult {
	w, ok := d.(driver.Waiter)
	if !ok {
		return nil
	}
	ch := make(chan waitResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		code, err := w.Wait(ctx, id)
		ch <- waitResult{code, err}
	}()
	return ch
}

func expectExit(t *testing.T, ch <-chan waitResult, want int) {
	t.Helper()
	if ch == nil {
		return
	}
	select {
	case r := <-ch:
		if r.err != nil || r.code != want {
			t.Errorf("Wait = %d, %v; want %d", r.code, r.err, want)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Wait did not return within 10s of the exit")
	}
}

func (s *suite) testStopGraceful(t *testing.T) {
	d := s.h.NewDriver(t)
	spec := s.spec(s.app, "stop-graceful")
	inst := start(t, d, spec)
	waited := waitAsync(d, inst.ID)

	type slowResult struct {
		code int
		body string
		err  error
	}
	slow := make(chan slowResult, 1)
	go func() {
		code, body, err := get(inst.Addr, "/slow?ms=800")
		slow <- slowResult{code, body, err}
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight

	t0 := time.Now()
	if err := d.Stop(ctxFor(t, opTimeout), inst.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	took := time.Since(t0)
	t.Logf("graceful Stop took %s", took.Round(time.Millisecond))
	if took >= spec.StopTimeout-500*time.Millisecond {
		t.Errorf("Stop took %s, about the stop timeout: the app did not get SIGTERM or Stop did not notice its exit", took)
	}
	select {
	case r := <-slow:
		if r.err != nil || r.code != http.StatusOK || r.body != "slow done" {
			t.Errorf("in-flight request during Stop: %d %q %v; want it completed", r.code, r.body, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("in-flight request did not complete")
	}
	expectExit(t, waited, 0)
	if _, ok := find(list(t, d, s.match("stop-graceful")), inst.ID); ok {
		t.Errorf("a stopped instance is still listed")
	}
	waitGone(t, inst.Addr)
}

func (s *suite) testStopKill(t *testing.T) {
	d := s.h.NewDriver(t)
	spec := s.spec(s.app, "stop-kill")
	spec.Env["TESTAPP_IGNORE_TERM"] = "1"
	spec.StopTimeout = time.Second
	inst := start(t, d, spec)
	waited := waitAsync(d, inst.ID)
	time.Sleep(100 * time.Millisecond)

	t0 := time.Now()
	if err := d.Stop(ctxFor(t, opTimeout), inst.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	took := time.Since(t0)
	t.Logf("Stop of an app ignoring SIGTERM took %s", took.Round(time.Millisecond))
	if took < 900*time.Millisecond {
		t.Errorf("Stop took %s, less than the 1s stop timeout: SIGTERM is ignored, so it cannot have exited", took)
	}
	if took > 7*time.Second {
		t.Errorf("Stop took %s with a 1s stop timeout", took)
	}
	expectExit(t, waited, 137)
	waitGone(t, inst.Addr)
	if _, ok := find(list(t, d, s.match("stop-kill")), inst.ID); ok {
		t.Errorf("a stopped instance is still listed")
	}
}

func (s *suite) testStopUnknown(t *testing.T) {
	d := s.h.NewDriver(t)
	if err := d.Stop(ctxFor(t, opTimeout), "slipway-drivertest-no-such-instance"); err != nil {
		t.Errorf("Stop of an unknown id: %v", err)
	}
	inst := start(t, d, s.spec(s.app, "stop-twice"))
	for i := 0; i < 2; i++ {
		if err := d.Stop(ctxFor(t, opTimeout), inst.ID); err != nil {
			t.Errorf("Stop #%d: %v", i+1, err)
		}
	}
	var buf syncBuffer
	if err := d.Logs(ctxFor(t, opTimeout), inst.ID, &buf, false); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Logs of a stopped instance: %v, want ErrNotFound", err)
	}
	if w, ok := d.(driver.Waiter); ok {
		if _, err := w.Wait(ctxFor(t, opTimeout), inst.ID); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("Wait for a stopped instance: %v, want ErrNotFound", err)
		}
	}
}

func (s *suite) testLogs(t *testing.T) {
	d := s.h.NewDriver(t)
	inst := start(t, d, s.spec(s.app, "logs"))
	m1 := "mark-" + randHex(4)
	mustGet(t, inst.Addr, "/healthz?mark="+m1)
	var out string
	ok := waitFor(5*time.Second, func() bool {
		var buf syncBuffer
		if err := d.Logs(ctxFor(t, opTimeout), inst.ID, &buf, false); err != nil {
			t.Fatalf("Logs: %v", err)
		}
		out = buf.String()
		return strings.Contains(out, m1) && strings.Contains(out, "testapp stderr hello")
	})
	if !ok {
		t.Fatalf("Logs lacks the request line %q or the stderr line; got:\n%s", m1, out)
	}
	if !strings.Contains(out, "testapp listening") {
		t.Errorf("Logs lacks the start line; got:\n%s", out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var buf syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- d.Logs(ctx, inst.ID, &buf, true) }()
	m2 := "mark-" + randHex(4)
	mustGet(t, inst.Addr, "/healthz?mark="+m2)
	if !waitFor(5*time.Second, func() bool { return strings.Contains(buf.String(), m2) }) {
		t.Fatalf("following Logs did not show %q within 5s; got:\n%s", m2, buf.String())
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("following Logs ended with %v after cancel", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("following Logs did not return within 3s of cancel")
	}

	if err := d.Logs(ctxFor(t, opTimeout), "slipway-drivertest-no-such-instance", io.Discard, false); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Logs of an unknown id: %v, want ErrNotFound", err)
	}
}

func (s *suite) testPersistentData(t *testing.T) {
	d := s.h.NewDriver(t)
	key, other := s.project+"-data", s.project+"-data-other"
	spec := s.spec(s.app, "data")
	spec.DataKey = key
	first := start(t, d, spec)
	for _, want := range []string{"1", "2"} {
		if got := mustGet(t, first.Addr, "/data"); got != want {
			t.Fatalf("/data = %q, want %s", got, want)
		}
	}
	if err := d.Stop(ctxFor(t, opTimeout), first.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	spec2 := s.spec(s.appB, "data")
	spec2.DataKey = key
	second := start(t, d, spec2)
	if got := mustGet(t, second.Addr, "/data"); got != "3" {
		t.Errorf("/data after stop and start with the same DataKey (another release) = %q, want 3", got)
	}
	spec3 := s.spec(s.app, "data")
	spec3.DataKey = other
	third := start(t, d, spec3)
	if got := mustGet(t, third.Addr, "/data"); got != "1" {
		t.Errorf("/data with another DataKey = %q, want 1", got)
	}
}
