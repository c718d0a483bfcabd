package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	swarmapi "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/swarm"
	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// sample is one request of the load.
type sample struct {
	sent, done time.Time
	status     int
	release    string // the marker the answer carried
	err        error
}

// load sends the open-loop load to url with a Host header and records every answer.
type load struct {
	mu      sync.Mutex
	samples []sample
}

func (l *load) run(ctx context.Context, o options, target, host string) {
	c := proxybench.Client(o.slow + 10*time.Second)
	every := 100 / max(1, o.slowPct)
	proxybench.OpenLoop(ctx, o.rate, 24*time.Hour, func(i int, intended time.Time) {
		path := "/release"
		if o.slowPct > 0 && i%every == 0 {
			path = fmt.Sprintf("/slow?ms=%d", o.slow.Milliseconds())
		}
		req, _ := http.NewRequest(http.MethodGet, target+path, nil)
		req.Host = host
		s := sample{sent: time.Now()}
		res, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			s.status = res.StatusCode
			s.release = res.Header.Get("X-Testapp-Release")
			if path == "/release" {
				s.release = strings.TrimSpace(string(b))
			}
		}
		s.err, s.done = err, time.Now()
		l.mu.Lock()
		l.samples = append(l.samples, s)
		l.mu.Unlock()
	})
}

// result is one system's outcome.
type result struct {
	name             string
	requests, failed int
	oldAfterReturn   int
	deploys          []time.Duration
	firstErr         string
}

// score counts failed requests and answers from an older release than the
// one the last deploy that returned before the request was sent put live.
func score(name string, samples []sample, returned []time.Time, deploys []time.Duration) result {
	r := result{name: name, requests: len(samples), deploys: deploys}
	for _, s := range samples {
		if s.err != nil || s.status != http.StatusOK {
			r.failed++
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("status %d %v", s.status, s.err)
			}
			continue
		}
		want := 0
		for i, t := range returned {
			if s.sent.After(t) {
				want = i + 1
			}
		}
		if s.release != "" && strings.HasPrefix(s.release, "release-") {
			var got int
			fmt.Sscanf(s.release, "release-%d", &got)
			if got < want {
				r.oldAfterReturn++
			}
		}
	}
	return r
}

// benchEnv is the swarm, registry and images both systems use.
type benchEnv struct {
	dir      string
	reg      string
	images   []string // release-0 … release-N digest refs
	cli      *client.Client
	leave    bool
	registry *exec.Cmd
}

func swarmBench(ctx context.Context, o options) error {
	e, err := setupSwarm(ctx, o)
	if e != nil {
		defer e.close()
	}
	if err != nil {
		return err
	}
	fmt.Printf("swarm: %d redeploys per system under %d req/s, %d%% of them %s long\n", o.deploys, o.rate, o.slowPct, o.slow)
	ours, err := benchOurs(ctx, o, e)
	if err != nil {
		return fmt.Errorf("slipway: %w", err)
	}
	native, err := benchNative(ctx, o, e)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	fmt.Printf("\n%-56s %9s %7s %22s %14s\n", "system", "requests", "failed", "old answers after ret.", "median deploy")
	for _, r := range []result{ours, native} {
		fmt.Printf("%-56s %9d %7d %22d %14s\n", r.name, r.requests, r.failed, r.oldAfterReturn, ms(median(r.deploys)))
		if r.firstErr != "" {
			fmt.Printf("  first failure: %s\n", r.firstErr)
		}
	}
	fmt.Printf("failed requests: slipway %d, native start-first %d\n\n", ours.failed, native.failed)
	return nil
}

func setupSwarm(ctx context.Context, o options) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "slipway-swarmbench-")
	if err != nil {
		return nil, err
	}
	e := &benchEnv{dir: dir}
	state, _ := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output()
	if strings.TrimSpace(string(state)) == "inactive" {
		if out, err := exec.Command("docker", "swarm", "init", "--advertise-addr", "127.0.0.1").CombinedOutput(); err != nil {
			return e, fmt.Errorf("docker swarm init: %v: %s", err, out)
		}
		e.leave = true
	}
	node, _ := exec.Command("docker", "info", "--format", "{{.Swarm.NodeID}}").Output()
	if out, err := exec.Command("docker", "node", "update", "--label-add", "region=bench", strings.TrimSpace(string(node))).CombinedOutput(); err != nil {
		return e, fmt.Errorf("labelling the node: %v: %s", err, out)
	}
	if e.cli, err = client.New(client.FromEnv); err != nil {
		return e, err
	}
	if err := e.startRegistry(); err != nil {
		return e, err
	}
	return e, e.buildImages(ctx, o.deploys+1)
}

func (e *benchEnv) close() {
	exec.Command("sh", "-c", "docker service rm $(docker service ls -q --filter label=dev.slipway.bench=1) 2>/dev/null").Run()
	if e.leave {
		exec.Command("docker", "swarm", "leave", "--force").Run()
	}
	if e.registry != nil && e.registry.Process != nil {
		e.registry.Process.Kill()
		e.registry.Wait()
	}
	os.RemoveAll(e.dir)
}

// startRegistry runs Debian's docker-registry on loopback.
func (e *benchEnv) startRegistry() error {
	addr, err := proxybench.FreePort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(e.dir, "reg"), addr)
	p := filepath.Join(e.dir, "registry.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		return err
	}
	e.registry = exec.Command("docker-registry", "serve", p)
	if err := e.registry.Start(); err != nil {
		return fmt.Errorf("docker-registry: %w", err)
	}
	e.reg = addr
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get("http://" + addr + "/v2/"); err == nil {
			res.Body.Close()
			return nil
		}
	}
	return errors.New("docker-registry did not answer")
}

// buildImages builds the test app on a static busybox (the swarm driver's
// env wrapper and the native health check need a shell) in n releases.
func (e *benchEnv) buildImages(ctx context.Context, n int) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	appDir, shDir := filepath.Join(e.dir, "app"), filepath.Join(e.dir, "bin")
	os.MkdirAll(appDir, 0o755)
	os.MkdirAll(shDir, 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(appDir, "testapp"), "./internal/driver/testapp/cmd/testapp")
	build.Dir, build.Env = root, append(proxybench.EnvWithout("SLIPWAY_"), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the test app: %v: %s", err, out)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("a static busybox (busybox-static): %w", err)
	}
	for _, n := range []string{"busybox", "sh"} {
		if err := os.WriteFile(filepath.Join(shDir, n), bb, 0o755); err != nil {
			return err
		}
	}
	base, err := image.Build(ctx, image.Spec{Dir: shDir, WorkDir: "/bin", Env: map[string]string{"PATH": "/bin"}})
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		img, err := image.Build(ctx, image.Spec{Base: base, Dir: appDir, WorkDir: "/app", Entrypoint: []string{"/app/testapp"},
			ExposedPort: 3000, Env: map[string]string{"TESTAPP_MARKER": fmt.Sprintf("release-%d", i)}})
		if err != nil {
			return err
		}
		ref, err := e.push(img, i)
		if err != nil {
			return err
		}
		e.images = append(e.images, ref)
	}
	return nil
}

func (e *benchEnv) push(img v1.Image, i int) (string, error) {
	tag, err := name.NewTag(fmt.Sprintf("%s/bench/app:r%d", e.reg, i))
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("pushing %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/bench/app@%s", e.reg, d), nil
}

// benchOurs: the swarm driver and Slipway's router, as serve does a deploy:
// start the new service, gate, swap, drain, remove the old service.
func benchOurs(ctx context.Context, o options, e *benchEnv) (result, error) {
	d, err := swarm.New(ctx, swarm.WithRegion("bench"), swarm.WithLabels(map[string]string{"dev.slipway.bench": "1"}))
	if err != nil {
		return result{}, err
	}
	defer d.Close()
	r, err := proxy.NewRouter(filepath.Join(e.dir, "router.json"), proxy.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return result{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	defer srv.Close()
	health := proxy.HealthCheck{Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second, Deadline: 90 * time.Second}
	start := func(i int) (driver.Instance, error) {
		return d.Start(ctx, driver.Spec{Image: driver.Image{Ref: e.images[i]}, Name: fmt.Sprintf("bench-web-r%d", i), Port: 3000,
			Env: map[string]string{}, Labels: driver.ManagedLabels("bench", "shop", "web", fmt.Sprintf("r%d", i), "web"), StopTimeout: 10 * time.Second})
	}
	cur, err := start(0)
	if err != nil {
		return result{}, err
	}
	if _, err := r.Deploy(ctx, proxy.DeployRequest{Service: "shop/web", Hosts: []string{"shop.localhost"}, Targets: []string{cur.Addr}, Health: health}); err != nil {
		return result{}, err
	}
	var l load
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() { l.run(lctx, o, "http://"+ln.Addr().String(), "shop.localhost"); close(loaded) }()
	time.Sleep(2 * time.Second)
	var returned []time.Time
	var took []time.Duration
	for i := 1; i <= o.deploys; i++ {
		t0 := time.Now()
		next, err := start(i)
		if err == nil {
			_, err = r.Deploy(ctx, proxy.DeployRequest{Service: "shop/web", Hosts: []string{"shop.localhost"}, Targets: []string{next.Addr},
				Health: health, DrainTimeout: 30 * time.Second})
		}
		if err != nil {
			stopLoad()
			<-loaded
			return result{}, fmt.Errorf("deploy %d: %w", i, err)
		}
		if err := d.Stop(ctx, cur.ID); err != nil {
			fmt.Printf("  stopping the old service: %v\n", err)
		}
		cur = next
		returned = append(returned, time.Now())
		took = append(took, time.Since(t0))
		fmt.Printf("  slipway deploy %d: %s\n", i, ms(took[len(took)-1]))
	}
	time.Sleep(o.slow + time.Second)
	stopLoad()
	<-loaded
	d.Stop(context.Background(), cur.ID)
	return score("slipway (swarm driver + router cutover)", l.samples, returned, took), nil
}

// benchNative: one service updated with `docker service update --image …
// --update-order start-first` and a health check. The routing mesh does not
// answer on this machine, so the load goes through a small reverse proxy
// that follows Swarm's task list (every 100 ms) to the published port of the
// running task, as a Swarm-aware proxy (Traefik's swarm provider) does.
func benchNative(ctx context.Context, o options, e *benchEnv) (result, error) {
	const svc = "bench-native"
	hc := `printf "GET /healthz HTTP/1.0\r\n\r\n" | /bin/busybox nc 127.0.0.1 3000 | /bin/busybox grep -q "200 OK"`
	args := []string{"service", "create", "--name", svc, "--label", "dev.slipway.bench=1", "--detach=false", "--quiet",
		"--publish", "mode=host,target=3000", "--env", "PORT=3000", "--update-order", "start-first", "--update-monitor", "2s",
		"--health-cmd", hc, "--health-interval", "1s", "--health-timeout", "2s", "--health-retries", "3",
		"--stop-grace-period", "10s", "--constraint", "node.labels.region==bench", e.images[0]}
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("docker service create: %v: %s", err, out)
	}
	defer exec.Command("docker", "service", "rm", svc).Run()

	var active atomic.Value // current "127.0.0.1:port"
	follow := func() {
		tl, err := e.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svc)})
		if err != nil {
			return
		}
		for _, t := range tl.Items {
			if t.DesiredState == swarmapi.TaskStateRunning && t.Status.State == swarmapi.TaskStateRunning {
				for _, p := range t.Status.PortStatus.Ports {
					if p.PublishedPort != 0 {
						active.Store(fmt.Sprintf("127.0.0.1:%d", p.PublishedPort))
					}
				}
			}
		}
	}
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	for active.Load() == nil {
		follow()
		time.Sleep(100 * time.Millisecond)
	}
	go func() {
		for fctx.Err() == nil {
			follow()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: "http", Host: active.Load().(string)})
	}, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	defer srv.Close()

	var l load
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() { l.run(lctx, o, "http://"+ln.Addr().String(), "shop.localhost"); close(loaded) }()
	time.Sleep(2 * time.Second)
	var returned []time.Time
	var took []time.Duration
	for i := 1; i <= o.deploys; i++ {
		t0 := time.Now()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "docker", "service", "update", "--detach=false", "--quiet", "--image", e.images[i], svc)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			stopLoad()
			<-loaded
			return result{}, fmt.Errorf("docker service update %d: %v: %s", i, err, out.String())
		}
		returned = append(returned, time.Now())
		took = append(took, time.Since(t0))
		fmt.Printf("  native update %d: %s\n", i, ms(took[len(took)-1]))
	}
	time.Sleep(o.slow + time.Second)
	stopLoad()
	<-loaded
	return score("swarm start-first + health check (task-following proxy)", l.samples, returned, took), nil
}
