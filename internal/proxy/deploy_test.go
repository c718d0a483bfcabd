package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 2,000 requests from 16 goroutines over about two seconds, one in twenty
// slow, while the service is switched from release a to release b: none
// fails, each answer comes whole from one release, nothing starting after
// the swap reaches a, and a gets nothing once Deploy returned.
func TestCutoverUnderLoad(t *testing.T) {
	r, front := newTestRouter(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)

	type result struct {
		start, end time.Time
		release    string
		err        error
	}
	const workers, perWorker = 16, 125
	results := make([][]result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				path := "/"
				if (w*perWorker+i)%20 == 0 {
					path = "/slow?ms=250"
				}
				start := time.Now()
				code, body, h, err := tryGet(front, "us.localhost", path)
				if err == nil && code != 200 {
					err = fmt.Errorf("status %d: %.80q", code, body)
				}
				if err == nil && h.Get("X-Release") != body {
					err = fmt.Errorf("mixed answer: header %q body %q", h.Get("X-Release"), body)
				}
				results[w] = append(results[w], result{start, time.Now(), body, err})
				time.Sleep(8 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	res := deploy(t, r, "us/app", nil, b.addr)
	aAfterDrain := a.hits.Load()
	wg.Wait()

	if len(res.Old) != 1 || res.Old[0] != a.addr || res.Cut != 0 {
		t.Errorf("result: %+v", res)
	}
	var n, fromA, fromB int
	for _, rs := range results {
		for _, x := range rs {
			n++
			switch {
			case x.err != nil:
				t.Errorf("request failed: %v", x.err)
			case x.release == "a":
				fromA++
				if x.start.After(res.SwappedAt) {
					t.Errorf("request started %s after the swap was answered by the old release", x.start.Sub(res.SwappedAt))
				}
			case x.release == "b":
				fromB++
				if x.end.Before(res.SwappedAt.Add(-time.Second)) {
					t.Errorf("answer from the new release long before the swap")
				}
			default:
				t.Errorf("answer from unknown release %q", x.release)
			}
		}
	}
	if n != workers*perWorker || fromA == 0 || fromB == 0 {
		t.Errorf("requests %d, from a %d, from b %d", n, fromA, fromB)
	}
	if got := a.hits.Load(); got != aAfterDrain {
		t.Errorf("old release got %d requests after its drain", got-aAfterDrain)
	}
	t.Logf("%d requests: %d from a, %d from b; gate %s, drain %s", n, fromA, fromB, res.GateTook, res.DrainTook)
}

// A slow request in flight on the old target when the swap happens
// finishes normally, and Deploy returns only after it did.
func TestInflightRequestSurvivesSwap(t *testing.T) {
	r, front := newTestRouter(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)

	type answer struct {
		code int
		body string
		end  time.Time
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, body, _, err := tryGet(front, "us.localhost", "/slow?ms=600")
		done <- answer{code, body, time.Now(), err}
	}()
	<-a.slowStarted
	res := deploy(t, r, "us/app", nil, b.addr)
	returned := time.Now()
	got := <-done
	if got.err != nil || got.code != 200 || got.body != "a" {
		t.Fatalf("slow request: %d %q %v", got.code, got.body, got.err)
	}
	if returned.Before(got.end.Add(-50 * time.Millisecond)) {
		t.Errorf("Deploy returned %s before the in-flight request to the old target finished", got.end.Sub(returned))
	}
	if res.Cut != 0 || res.DrainTook < 300*time.Millisecond {
		t.Errorf("result: %+v", res)
	}
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "b" {
		t.Errorf("after deploy: %d %q", code, body)
	}
}

// At the drain deadline what still runs on the old target is closed: a
// slow request gets a 503, a websocket is disconnected.
func TestDrainDeadlineClosesLongRequests(t *testing.T) {
	r, front := newTestRouter(t)
	a, b := newBackend(t, "a"), newBackend(t, "b")
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)

	conn, br := wsDial(t, front, "us.localhost")
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	slow := make(chan int, 1)
	go func() {
		code, _, _, _ := tryGet(front, "us.localhost", "/slow?ms=5000")
		slow <- code
	}()
	<-a.slowStarted

	start := time.Now()
	res, err := r.Deploy(context.Background(), DeployRequest{Service: "us/app", Targets: []string{b.addr}, Health: fastHealth, DrainTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if res.Cut != 2 || took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("deploy took %s, result %+v; want 2 requests cut after 300ms", took, res)
	}
	if code := <-slow; code != http.StatusServiceUnavailable {
		t.Errorf("slow request cut by the drain: status %d, want 503", code)
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadString('\n'); !errors.Is(err, io.EOF) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("websocket to the old target still open after its drain")
		}
	}
}

// A failed gate: the new targets never see a request, the old one keeps
// serving throughout, and the error says what each target answered.
func TestGateFailureKeepsOldTargets(t *testing.T) {
	r, front := newTestRouter(t)
	a, bad := newBackend(t, "a"), newBackend(t, "bad")
	bad.healthStatus.Store(500)
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)

	// An address nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	stop := make(chan struct{})
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, _, err := tryGet(front, "us.localhost", "/")
				if err != nil || code != 200 || body != "a" {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	start := time.Now()
	h := fastHealth
	h.Deadline = 400 * time.Millisecond
	_, err = r.Deploy(context.Background(), DeployRequest{Service: "us/app", Targets: []string{bad.addr, dead}, Health: h})
	took := time.Since(start)
	close(stop)
	wg.Wait()

	if err == nil {
		t.Fatal("deploy with unhealthy targets succeeded")
	}
	var ge *GateError
	if !errors.As(err, &ge) || !errors.Is(err, ErrUnhealthy) || !errors.Is(err, ErrGateDeadline) {
		t.Errorf("error %v (%T) is not a deadline GateError", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"deadline 400ms passed", bad.addr + ": unhealthy", "status 500", dead + ": unhealthy", "connection refused", "GET /health"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if took > h.Deadline+time.Second {
		t.Errorf("gate took %s, deadline %s", took, h.Deadline)
	}
	if n := bad.hits.Load(); n != 0 {
		t.Errorf("unhealthy new target got %d requests", n)
	}
	if bad.checks.Load() < 2 {
		t.Errorf("only %d health checks in 400ms at 20ms intervals", bad.checks.Load())
	}
	if failed.Load() != 0 || served.Load() == 0 {
		t.Errorf("during the gate: %d served, %d failed", served.Load(), failed.Load())
	}
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "a" {
		t.Errorf("after the failed gate: %d %q", code, body)
	}
	if st := r.Services(); len(st[0].Targets) != 1 || st[0].Targets[0].Address != a.addr {
		t.Errorf("active targets after a failed gate: %+v", st[0].Targets)
	}
}

// A target whose health check hangs cannot stretch the gate past its deadline.
func TestGateDeadlineWithHangingTarget(t *testing.T) {
	r, _ := newTestRouter(t)
	hang := newBackend(t, "hang")
	hang.healthBlock = make(chan struct{}) // never closed
	h := HealthCheck{Path: "/health", Timeout: 30 * time.Second, Deadline: 500 * time.Millisecond}
	start := time.Now()
	_, err := r.Deploy(context.Background(), DeployRequest{Service: "us/app", Hosts: []string{"us.localhost"}, Targets: []string{hang.addr}, Health: h})
	took := time.Since(start)
	if !errors.Is(err, ErrGateDeadline) || !strings.Contains(err.Error(), "no answer before the gate ended") {
		t.Errorf("err = %v", err)
	}
	if took < 450*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("gate took %s, deadline 500ms", took)
	}
	if len(r.Services()) != 0 {
		t.Errorf("a service whose first deploy failed exists: %+v", r.Services())
	}
}

func TestGateCancelled(t *testing.T) {
	r, front := newTestRouter(t)
	a, bad := newBackend(t, "a"), newBackend(t, "bad")
	bad.healthStatus.Store(503)
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.Deploy(ctx, DeployRequest{Service: "us/app", Targets: []string{bad.addr}, Health: fastHealth})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("err = %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancelled gate took %s", took)
	}
	if bad.hits.Load() != 0 {
		t.Errorf("new target got requests")
	}
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "a" {
		t.Errorf("after the cancelled gate: %d %q", code, body)
	}
}

// Deploys of one service run one after the other; another service's
// deploy does not wait for them.
func TestConcurrentDeploys(t *testing.T) {
	r, front := newTestRouter(t)
	a, slow, next, other := newBackend(t, "a"), newBackend(t, "slow"), newBackend(t, "next"), newBackend(t, "other")
	slow.healthBlock = make(chan struct{})
	deploy(t, r, "us/app", []string{"us.localhost"}, a.addr)

	h := fastHealth
	h.Timeout = 5 * time.Second
	first := make(chan DeployResult, 1)
	go func() {
		res, err := r.Deploy(context.Background(), DeployRequest{Service: "us/app", Targets: []string{slow.addr}, Health: h})
		if err != nil {
			t.Error(err)
		}
		first <- res
	}()
	for slow.checks.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan DeployResult, 1)
	go func() {
		res, err := r.Deploy(context.Background(), DeployRequest{Service: "us/app", Targets: []string{next.addr}, Health: h})
		if err != nil {
			t.Error(err)
		}
		second <- res
	}()

	// Another service is independent.
	start := time.Now()
	deploy(t, r, "de/app", []string{"de.localhost"}, other.addr)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("deploy of another service waited %s", took)
	}
	// The second deploy of us/app waits for the first: its target is not even checked.
	time.Sleep(150 * time.Millisecond)
	if next.checks.Load() != 0 {
		t.Errorf("second deploy ran its gate while the first was in progress")
	}
	// A waiting deploy gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := r.Deploy(ctx, DeployRequest{Service: "us/app", Targets: []string{next.addr}, Health: h})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for another deploy") {
		t.Errorf("waiting deploy with expired ctx: %v", err)
	}

	close(slow.healthBlock)
	r1, r2 := <-first, <-second
	if !r1.SwappedAt.Before(r2.SwappedAt) || len(r2.Old) != 1 || r2.Old[0] != slow.addr {
		t.Errorf("first %+v second %+v", r1, r2)
	}
	if code, body, _ := get(t, front, "us.localhost", "/"); code != 200 || body != "next" {
		t.Errorf("after both deploys: %d %q", code, body)
	}
}

func TestStatePersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "router.json")
	a, b := newBackend(t, "a"), newBackend(t, "b")

	r1, err := NewRouter(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	deploy(t, r1, "us/app", []string{"us.localhost", "*.shop.test"}, a.addr)
	deploy(t, r1, "de/app", []string{"de.localhost"}, b.addr)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version": 1`, `"us/app"`, `"*.shop.test"`, a.addr, `"interval": "20ms"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("state file lacks %s:\n%s", want, raw)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "state", ".*.tmp")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	r1.Close()

	// A new router from the same file serves at once, without a deploy.
	r2, err := NewRouter(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	srv := httptest.NewServer(r2)
	defer srv.Close()
	for host, want := range map[string]string{"us.localhost": "a", "x.shop.test": "a", "de.localhost": "b"} {
		if code, body, _ := get(t, srv, host, "/"); code != 200 || body != want {
			t.Errorf("%s after restart: %d %q", host, code, body)
		}
	}
	if st := r2.Services(); len(st) != 2 || st[1].Health.Interval != 20*time.Millisecond {
		t.Errorf("restored services: %+v", st)
	}
	// Changes after a restart are saved too.
	if _, err := r2.Remove(context.Background(), "de/app"); err != nil {
		t.Fatal(err)
	}
	r3, err := NewRouter(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if st := r3.Services(); len(st) != 1 || st[0].Name != "us/app" {
		t.Errorf("after Remove and restart: %+v", st)
	}

	// A damaged or newer file is an error, not an empty router.
	os.WriteFile(path, []byte(`{"version": 1, "services": [`), 0o644)
	if _, err := NewRouter(path); err == nil {
		t.Error("truncated state file loaded")
	}
	os.WriteFile(path, []byte(`{"version": 99, "services": []}`), 0o644)
	if _, err := NewRouter(path); !errors.Is(err, ErrStateVersion) {
		t.Errorf("newer state version: %v", err)
	}
}

// A failed state write aborts the deploy before the swap.
func TestStateWriteFailureAbortsDeploy(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRouter(filepath.Join(dir, "router.json"), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	a := newBackend(t, "a")
	// A regular file where the state directory should be: even root cannot
	// write there.
	blocker := filepath.Join(dir, "blocker")
	os.WriteFile(blocker, nil, 0o644)
	r.statePath = filepath.Join(blocker, "router.json")
	_, err = r.Deploy(context.Background(), DeployRequest{Service: "us/app", Hosts: []string{"us.localhost"}, Targets: []string{a.addr}, Health: fastHealth})
	if err == nil || !strings.Contains(err.Error(), "saving router state") {
		t.Errorf("err = %v", err)
	}
	if len(r.Services()) != 0 {
		t.Errorf("service exists after a failed save")
	}
}
