//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// loadRate is the request rate the hand-off tests hold while serve restarts.
const loadRate = 300

// loadResult counts what a load run saw.
type loadResult struct {
	sent, ok, refused, failed atomic.Int64
	mu                        sync.Mutex
	firstErrs                 []string
}

func (r *loadResult) fail(refused bool, msg string) {
	if refused {
		r.refused.Add(1)
	} else {
		r.failed.Add(1)
	}
	r.mu.Lock()
	if len(r.firstErrs) < 5 {
		r.firstErrs = append(r.firstErrs, msg)
	}
	r.mu.Unlock()
}

func (r *loadResult) String() string {
	return fmt.Sprintf("%d sent, %d ok, %d refused, %d failed %v", r.sent.Load(), r.ok.Load(), r.refused.Load(), r.failed.Load(), r.firstErrs)
}

// startLoad sends loadRate req/s to the store through the router, each on a
// new connection (so that a refused connection shows), until stop is called
// or limit passes.
func startLoad(routerAddr, store string, limit time.Duration) (stop func() *loadResult) {
	_, port, _ := net.SplitHostPort(routerAddr)
	url := "http://" + store + ".localhost:" + port + "/api/info"
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}}}
	res := &loadResult{}
	t0 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		proxybench.OpenLoop(ctx, loadRate, limit, func(int, time.Time) {
			res.sent.Add(1)
			resp, err := client.Get(url)
			if err != nil {
				res.fail(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET), fmt.Sprintf("at %s: %v", time.Since(t0).Round(time.Millisecond), err))
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				res.fail(false, resp.Status)
				return
			}
			res.ok.Add(1)
		})
	}()
	return func() *loadResult { cancel(); <-done; return res }
}

// checkLoad: no connection refused, no request failed, and the load ran.
// (A request net/http reads after Shutdown began is dropped unanswered: serve
// stops accepting and waits a moment before it shuts a server down.)
func checkLoad(t *testing.T, what string, res *loadResult) {
	t.Helper()
	if res.refused.Load() != 0 || res.failed.Load() != 0 || res.ok.Load() < loadRate*3 {
		t.Errorf("%s under %d req/s: %s; want 0 refused, 0 failed", what, loadRate, res)
	}
}

// startWith runs bin (a slipway binary) with extra fds, registered for cleanup.
func (p *project) startWith(bin string, files []*os.File, extraEnv []string, args ...string) *proc {
	p.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.dir
	cmd.Env = env(extraEnv...)
	cmd.ExtraFiles = files
	pr := &proc{name: "slipway " + strings.Join(args, " "), cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	// Output goes to a file, as under systemd or a terminal: a serve started
	// by this one on upgrade shares it and outlives this one.
	logf, err := os.Create(filepath.Join(p.t.TempDir(), "serve.log"))
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	stopTail := make(chan struct{})
	p.t.Cleanup(func() { close(stopTail) })
	go tailInto(logf.Name(), pr.stderr, stopTail)
	pr.started = time.Now()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", pr.name, err)
	}
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		pr.code = cmd.ProcessState.ExitCode()
		close(pr.done)
	}()
	return pr
}

// The way systemd restarts a socket-activated serve: the router's socket is
// held outside serve (here by the test, as systemd's .socket unit does) and
// passed in with LISTEN_FDS; SIGTERM stops serve gracefully and a new one
// starts on the same socket. Under 300 req/s nothing is refused or fails.
func TestRestartWithSocketActivation(t *testing.T) {
	p := newProject(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // f keeps the socket open, as systemd does
	defer f.Close()
	activated := func() *proc {
		pr := p.startWith(slipwayBin, []*os.File{f}, []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=http"}, "serve", "-C", p.dir, "--http", addr)
		pr.waitOutput(t, true, regexp.MustCompile(`slipway serve: router on http://`), time.Minute)
		return pr
	}
	serve := activated()
	p.deploy("us")
	if !answers(addr, "us") {
		t.Fatalf("us does not answer")
	}
	stop := startLoad(addr, "us", 30*time.Second)
	time.Sleep(2 * time.Second)
	t0 := time.Now()
	serve.cmd.Process.Signal(syscall.SIGTERM)
	if code := serve.wait(t, 40*time.Second); code != 0 {
		t.Errorf("serve exited %d after SIGTERM\n%s", code, serve.stderr)
	}
	serve = activated()
	t.Logf("serve stopped and started again in %s", time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	res := stop()
	t.Logf("load across the restart: %s", res)
	checkLoad(t, "restart", res)
	p.deploy("us") // the new serve owns the state and the API
	p.stopServe(serve)
}

// An upgrade: the binary at serve's path is replaced, SIGHUP makes serve start
// it on the same sockets (router and API), and the old one drains and exits.
// Under 300 req/s nothing is refused or fails, and the new serve deploys.
func TestUpgradeHandsOffSockets(t *testing.T) {
	p := newProject(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "slipway")
	copyFile(t, slipwayBin, bin)
	newBin := filepath.Join(dir, "slipway.new")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/slipway-dev/slipway/internal/cli.version=v0.0.0-upgraded", "-o", newBin, "./cmd/slipway")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the new binary: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	serve := p.startWith(bin, nil, nil, "serve", "-C", p.dir, "--http", addr)
	serve.waitOutput(t, true, regexp.MustCompile(`slipway serve: router on http://`), time.Minute)
	p.deploy("us")
	loadStart := time.Now()
	stop := startLoad(addr, "us", 30*time.Second)
	time.Sleep(2 * time.Second)
	if err := os.Rename(newBin, bin); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	t.Logf("SIGHUP at %s into the load", time.Since(loadStart).Round(time.Millisecond))
	serve.cmd.Process.Signal(syscall.SIGHUP)
	m := serve.waitOutput(t, true, regexp.MustCompile(`hand-off: new serve started.* pid=(\d+)`), 30*time.Second)
	newPid, _ := strconv.Atoi(m[1])
	waitLog(t, serve.stderr, regexp.MustCompile(`hand-off: the new serve is ready`), time.Minute)
	if code := serve.wait(t, 40*time.Second); code != 0 {
		t.Errorf("the old serve exited %d after the hand-off\n%s", code, serve.stderr)
	}
	t.Logf("hand-off to pid %d done in %s", newPid, time.Since(t0).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	res := stop()
	t.Logf("load across the upgrade: %s", res)
	checkLoad(t, "upgrade", res)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", newPid)); err != nil || exe != bin {
		t.Errorf("the new serve runs %q (%v), want the replaced %s", exe, err, bin)
	}
	// The API socket went over too: the new serve deploys.
	if out, errOut, code := p.run(3*time.Minute, nil, "deploy", "-C", p.dir, "--store-id", "us"); code != 0 {
		t.Errorf("deploy through the new serve: exit %d\n%s\n%s\nserve stderr:\n%s", code, out, errOut, serve.stderr)
	}
	syscall.Kill(newPid, syscall.SIGINT)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(newPid, 0) != nil {
			return
		}
	}
	t.Errorf("the new serve (pid %d) did not exit after SIGINT", newPid)
	syscall.Kill(newPid, syscall.SIGKILL)
}

// waitLog waits for re in buf, whether or not the process that wrote it still runs.
func waitLog(t *testing.T, buf *syncBuffer, re *regexp.Regexp, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if re.MatchString(buf.String()) {
			return
		}
	}
	t.Fatalf("no %q within %s in:\n%s", re, d, buf)
}

// tailInto copies what is appended to path into buf until stop (the file
// outlives the process that opened it: a serve it started writes there too).
func tailInto(path string, buf *syncBuffer, stop <-chan struct{}) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		io.Copy(buf, f)
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
