// Command cutover redeploys one service again and again under steady load,
// once through Slipway's router and once through nginx switching upstreams
// with a config rewrite and a reload, and counts what the visitors saw.
//
//	go run ./bench/cutover [-rate 300] [-duration 60s] [-deploys 20] [-stack slipway]
//
// -stack slipway then runs the same load and redeploys through the whole
// product (slipway serve, the multistore example, slipway deploy
// --deploy-only); see stack.go.
//
// See README.md. A failed request is reported, not an error: the command
// fails only when the harness itself does.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

type options struct {
	role, release string
	rate          int
	duration      time.Duration
	deploys       int
	slowEvery     int
	slow          time.Duration
	drain         time.Duration
	grace         time.Duration
	systems       string
	sequential    bool
	stack         string
	keep          bool
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: run as a child (backend|router)")
	flag.StringVar(&o.release, "release", "", "internal: release number of -role backend")
	flag.IntVar(&o.rate, "rate", 300, "requests per second (open loop)")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "load time per system (longer if the deploys are not done by then)")
	flag.IntVar(&o.deploys, "deploys", 20, "redeploys per system, spread over the duration")
	flag.IntVar(&o.slowEvery, "slow-every", 20, "every Nth request goes to /slow (20 = 5%)")
	flag.DurationVar(&o.slow, "slow", 2*time.Second, "how long /slow takes")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "Slipway drain timeout")
	flag.DurationVar(&o.grace, "grace", 0, "nginx: wait after a reload before stopping the old backend (default: -slow + 1s)")
	flag.StringVar(&o.systems, "systems", "slipway,nginx", "which systems to run")
	flag.BoolVar(&o.sequential, "sequential", false, "run the systems one after the other instead of side by side")
	flag.StringVar(&o.stack, "stack", "", "also run the full stack afterwards: \"slipway\" = slipway serve + the multistore example, redeployed with `slipway deploy --deploy-only` (see README)")
	flag.BoolVar(&o.keep, "keep", false, "-stack: keep the temporary directory (binary, repository, serve.log, state)")
	flag.Parse()
	if o.grace == 0 {
		o.grace = o.slow + time.Second
	}

	var err error
	switch o.role {
	case "backend":
		err = proxybench.Serve(proxybench.Backend(o.release, 64, o.slow))
	case "router":
		err = serveRouter(o.drain)
	case "":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = bench(ctx, o)
		stop()
	default:
		err = fmt.Errorf("unknown -role %q", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/cutover:", err)
		os.Exit(1)
	}
}

// sample is what one request saw.
type sample struct {
	intended, end time.Time
	slow          bool
	status        int
	err           error
	release       int // from the X-Release header; -1 if none
	mixed         bool
}

// switchover is one deploy: when the new release took over.
type switchover struct {
	release int
	at      time.Time
	took    time.Duration // until the old backend could be stopped
	gate    time.Duration
	cut     int
	old     []string // addresses of the replaced backends
}

// system is one way of switching releases.
type system interface {
	name() string
	addr() string
	// deploy makes backend b the only upstream.
	deploy(ctx context.Context, b *proxybench.Child, release int) (switchover, error)
	// grace is how long after deploy returns the previous backend must
	// live: zero for Slipway, whose deploy returns once it has drained.
	grace() time.Duration
	close()
}

type report struct {
	system    string
	samples   []sample
	switches  []switchover
	loadTime  time.Duration
	deployErr []string
	note      string
}

func bench(ctx context.Context, o options) error {
	switch o.stack {
	case "", "slipway":
	default:
		return fmt.Errorf("unknown -stack %q (want slipway)", o.stack)
	}
	var reports []report
	if o.systems != "none" && o.systems != "" {
		var err error
		if reports, err = benchRouters(ctx, o); err != nil {
			return err
		}
	}
	if o.stack == "" {
		return nil
	}
	return runStack(ctx, o, reports)
}

// benchRouters is the router-level comparison.
func benchRouters(ctx context.Context, o options) ([]report, error) {
	mode := "side by side"
	if o.sequential {
		mode = "one after the other"
	}
	fmt.Printf("bench/cutover: %d req/s per system, every %dth request /slow (%s), %d redeploys to fresh backend processes; systems run %s; 127.0.0.1, %d CPUs, %s\n",
		o.rate, o.slowEvery, o.slow, o.deploys, mode, runtime.NumCPU(), runtime.Version())
	type job struct {
		name  string
		start func(*proxybench.Child) (system, error)
		note  string
	}
	var jobs []job
	for _, name := range strings.Split(o.systems, ",") {
		switch name = strings.TrimSpace(name); name {
		case "slipway":
			jobs = append(jobs, job{name, func(b *proxybench.Child) (system, error) { return newSlipway(b, o.drain) }, "internal/proxy Router in a child process"})
		case "nginx":
			bin := proxybench.NginxPath()
			if bin == "" {
				fmt.Println("nginx is not installed (apt-get install -y nginx): nginx column skipped")
				continue
			}
			jobs = append(jobs, job{name, func(b *proxybench.Child) (system, error) { return newNginx(bin, b, o.grace) }, proxybench.NginxVersion(bin)})
		default:
			return nil, fmt.Errorf("unknown system %q", name)
		}
	}
	reports := make([]report, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		run := func() {
			reports[i], errs[i] = runSystem(ctx, o, j.start)
			reports[i].note = j.note
		}
		if o.sequential {
			run()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", jobs[i].name, err)
		}
	}
	printReports(o, reports)
	return reports, nil
}

// runSystem starts release 0 behind the system, runs the load, and
// redeploys on schedule; then stops everything it started.
func runSystem(ctx context.Context, o options, start func(*proxybench.Child) (system, error)) (report, error) {
	var mu sync.Mutex
	backends := map[int]*proxybench.Child{}
	startBackend := func(release int) (*proxybench.Child, error) {
		c, err := proxybench.StartChild("-role", "backend", "-release", strconv.Itoa(release), "-slow", o.slow.String())
		if err != nil {
			return nil, err
		}
		mu.Lock()
		backends[release] = c
		mu.Unlock()
		return c, nil
	}
	stopBackend := func(release int) {
		mu.Lock()
		c, ok := backends[release]
		delete(backends, release)
		mu.Unlock()
		if ok {
			c.Stop()
		}
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range backends {
			c.Stop()
		}
	}()

	b0, err := startBackend(0)
	if err != nil {
		return report{}, err
	}
	sys, err := start(b0)
	if err != nil {
		return report{}, err
	}
	defer sys.close()
	if err := proxybench.WaitHealthy(sys.addr(), "/health", 10*time.Second); err != nil {
		return report{}, fmt.Errorf("%s: %w", sys.name(), err)
	}
	fmt.Printf("running %s ...\n", sys.name())

	r := report{system: sys.name()}
	client := proxybench.Client(30 * time.Second)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	deploysDone := make(chan struct{})
	go stopLoadAfter(loadCtx, o, deploysDone, stopLoad)

	// The deploys, on schedule, each in its own goroutine: a deploy does
	// not wait for the previous one's drain (Slipway orders them itself).
	addrs := map[string]int{b0.Addr: 0}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(deploysDone)
		var deploys sync.WaitGroup
		defer deploys.Wait()
		begin := time.Now()
		every := o.duration / time.Duration(o.deploys+1)
		for k := 1; k <= o.deploys; k++ {
			select {
			case <-time.After(time.Until(begin.Add(time.Duration(k) * every))):
			case <-loadCtx.Done():
				return
			}
			b, err := startBackend(k)
			if err != nil {
				mu.Lock()
				r.deployErr = append(r.deployErr, err.Error())
				mu.Unlock()
				continue
			}
			mu.Lock()
			addrs[b.Addr] = k
			mu.Unlock()
			deploys.Add(1)
			go func() {
				defer deploys.Done()
				sw, err := sys.deploy(ctx, b, k)
				mu.Lock()
				if err != nil {
					r.deployErr = append(r.deployErr, fmt.Sprintf("release %d: %v", k, err))
					mu.Unlock()
					stopBackend(k)
					return
				}
				r.switches = append(r.switches, sw)
				var old []int
				for _, a := range sw.old {
					old = append(old, addrs[a])
				}
				mu.Unlock()
				time.Sleep(sys.grace())
				for _, rel := range old {
					stopBackend(rel)
				}
			}()
		}
	}()

	url := "http://" + sys.addr()
	maxN := o.rate * int(3*o.duration/time.Second)
	samples := make([]sample, maxN)
	t0 := time.Now()
	n := proxybench.OpenLoop(loadCtx, o.rate, 3*o.duration, func(i int, intended time.Time) {
		s := sample{intended: intended, slow: i%o.slowEvery == 0, release: -1}
		path := "/"
		if s.slow {
			path = "/slow"
		}
		status, body, h, err := proxybench.Get(client, url+path)
		s.end, s.status, s.err = time.Now(), status, err
		if err == nil {
			if rel, err := strconv.Atoi(h.Get("X-Release")); err == nil {
				s.release = rel
			}
			want := "release=" + h.Get("X-Release") + "\n"
			s.mixed = status == 200 && !strings.HasPrefix(string(body), want)
		}
		samples[i] = s
	})
	r.loadTime = time.Since(t0)
	stopLoad()
	wg.Wait()
	r.samples = samples[:n]
	slices.SortFunc(r.switches, func(a, b switchover) int { return a.at.Compare(b.at) })
	return r, ctx.Err()
}

// serveRouter is the Slipway side, in its own process like nginx (and
// like `slipway serve`): a router, and deploys asked for on stdin as
// "deploy RELEASE ADDR", answered on stdout, several at a time.
func serveRouter(drain time.Duration) error {
	r, err := proxy.NewRouter("", proxy.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), proxy.WithDrainTimeout(drain))
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go proxy.NewServer("", r).Serve(l)
	fmt.Printf("LISTEN %s\n", l.Addr())
	var out sync.Mutex
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "deploy" {
			continue
		}
		go func() {
			start := time.Now()
			res, err := r.Deploy(context.Background(), proxy.DeployRequest{
				Service: "bench/app",
				Hosts:   []string{"127.0.0.1"},
				Targets: []string{f[2]},
				Health:  proxy.HealthCheck{Path: "/health"},
			})
			out.Lock()
			defer out.Unlock()
			if err != nil {
				fmt.Printf("error %s %s\n", f[1], strings.ReplaceAll(err.Error(), "\n", " "))
				return
			}
			fmt.Printf("deployed %s %d %d %d %d %s\n", f[1], res.SwappedAt.UnixNano(), time.Since(start), res.GateTook, res.Cut, strings.Join(append(res.Old, "-"), ","))
		}()
	}
	return nil
}

// slipway drives a router child.
type slipway struct {
	c *proxybench.Child

	mu      sync.Mutex
	waiting map[string]chan string
}

func newSlipway(b0 *proxybench.Child, drain time.Duration) (system, error) {
	c, err := proxybench.StartChild("-role", "router", "-drain", drain.String())
	if err != nil {
		return nil, err
	}
	s := &slipway{c: c, waiting: map[string]chan string{}}
	go func() {
		for line := range c.Lines {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.mu.Lock()
			ch := s.waiting[f[1]]
			delete(s.waiting, f[1])
			s.mu.Unlock()
			if ch != nil {
				ch <- line
			}
		}
	}()
	if _, err := s.deploy(context.Background(), b0, 0); err != nil {
		c.Stop()
		return nil, err
	}
	return s, nil
}

func (s *slipway) name() string         { return "slipway" }
func (s *slipway) addr() string         { return s.c.Addr }
func (s *slipway) grace() time.Duration { return 0 }

func (s *slipway) deploy(ctx context.Context, b *proxybench.Child, release int) (switchover, error) {
	rel := strconv.Itoa(release)
	ch := make(chan string, 1)
	s.mu.Lock()
	s.waiting[rel] = ch
	s.mu.Unlock()
	if err := s.c.Send("deploy " + rel + " " + b.Addr); err != nil {
		return switchover{}, err
	}
	var line string
	select {
	case line = <-ch:
	case <-ctx.Done():
		return switchover{}, ctx.Err()
	case <-time.After(5 * time.Minute):
		return switchover{}, errors.New("no answer from the router")
	}
	f := strings.Fields(line)
	if f[0] != "deployed" || len(f) != 7 {
		return switchover{}, errors.New(line)
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	sw := switchover{release: release, at: time.Unix(0, num(f[2])), took: time.Duration(num(f[3])), gate: time.Duration(num(f[4])), cut: int(num(f[5]))}
	for _, a := range strings.Split(f[6], ",") {
		if a != "-" {
			sw.old = append(sw.old, a)
		}
	}
	return sw, nil
}

func (s *slipway) close() { s.c.Stop() }

// nginxSystem switches upstreams by rewriting nginx.conf and reloading.
type nginxSystem struct {
	n     *proxybench.Nginx
	dir   string
	after time.Duration

	mu      sync.Mutex
	current string
}

func newNginx(bin string, b0 *proxybench.Child, grace time.Duration) (system, error) {
	dir, err := os.MkdirTemp("", "slipway-cutover-nginx-")
	if err != nil {
		return nil, err
	}
	os.Chmod(dir, 0o755)
	n, err := proxybench.StartNginx(bin, dir, []string{b0.Addr})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &nginxSystem{n: n, dir: dir, after: grace, current: b0.Addr}, nil
}

func (s *nginxSystem) name() string         { return "nginx" }
func (s *nginxSystem) grace() time.Duration { return s.after }
func (s *nginxSystem) addr() string         { return s.n.Addr }

func (s *nginxSystem) deploy(ctx context.Context, b *proxybench.Child, release int) (switchover, error) {
	// nginx has no health gate; wait for the new backend ourselves.
	start := time.Now()
	if err := proxybench.WaitHealthy(b.Addr, "/health", 30*time.Second); err != nil {
		return switchover{}, err
	}
	gate := time.Since(start)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.n.Switch([]string{b.Addr}); err != nil {
		return switchover{}, err
	}
	old := s.current
	s.current = b.Addr
	return switchover{release: release, at: time.Now(), took: time.Since(start), gate: gate, old: []string{old}}, nil
}

func (s *nginxSystem) close() {
	s.n.Stop()
	os.RemoveAll(s.dir)
}

// activeAt returns the release that took over last at or before t.
func activeAt(sw []switchover, t time.Time) int {
	rel := 0
	for _, s := range sw {
		if !s.at.After(t) {
			rel = s.release
		}
	}
	return rel
}

type summary struct {
	requests, ok, connErr, status5xx, otherStatus, mixed, stale, early int
	p50, p99, p99fast, p99slow                                         time.Duration
	releases                                                           int
	errExamples                                                        []string
}

func summarise(r report) summary {
	var s summary
	var all, fast, slow []time.Duration
	seen := map[int]bool{}
	examples := map[string]bool{}
	for _, x := range r.samples {
		s.requests++
		lat := x.end.Sub(x.intended)
		switch {
		case x.err != nil:
			s.connErr++
			msg := x.err.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
			examples[msg] = true
			continue
		case x.status >= 500:
			s.status5xx++
			examples[fmt.Sprintf("status %d", x.status)] = true
			continue
		case x.status != 200:
			s.otherStatus++
			examples[fmt.Sprintf("status %d", x.status)] = true
			continue
		}
		s.ok++
		all = append(all, lat)
		if x.slow {
			slow = append(slow, lat)
		} else {
			fast = append(fast, lat)
		}
		seen[x.release] = true
		if x.mixed || x.release < 0 {
			s.mixed++
		}
		// Served by a release that had already been replaced when the
		// request was due to be sent.
		if x.release < activeAt(r.switches, x.intended) {
			s.stale++
		}
		// Served by a release that took over only after the answer came.
		if x.release > activeAt(r.switches, x.end.Add(5*time.Millisecond)) {
			s.early++
		}
	}
	s.releases = len(seen)
	s.p50 = proxybench.Summarise(all).P50
	s.p99 = proxybench.Summarise(all).P99
	s.p99fast = proxybench.Summarise(fast).P99
	s.p99slow = proxybench.Summarise(slow).P99
	for e := range examples {
		s.errExamples = append(s.errExamples, e)
	}
	slices.Sort(s.errExamples)
	return s
}

func printReports(o options, reports []report) {
	fmt.Println()
	fmt.Printf("%-8s %8s %7s %9s %6s %6s %6s %6s %9s %9s %10s %10s %9s\n",
		"system", "requests", "failed", "conn-err", "5xx", "mixed", "stale", "early", "p50", "p99", "p99 fast", "p99 /slow", "releases")
	sums := make([]summary, len(reports))
	for i, r := range reports {
		s := summarise(r)
		sums[i] = s
		failed := s.connErr + s.status5xx + s.otherStatus
		fmt.Printf("%-8s %8d %7d %9d %6d %6d %6d %6d %9s %9s %10s %10s %9d\n",
			r.system, s.requests, failed, s.connErr, s.status5xx, s.mixed, s.stale, s.early,
			proxybench.Ms(s.p50), proxybench.Ms(s.p99), proxybench.Ms(s.p99fast), proxybench.Ms(s.p99slow), s.releases)
	}
	fmt.Println()
	for i, r := range reports {
		var took, gate []time.Duration
		cut := 0
		for _, sw := range r.switches {
			took, gate = append(took, sw.took), append(gate, sw.gate)
			cut += sw.cut
		}
		fmt.Printf("%s (%s): %d/%d deploys in %s of load", r.system, r.note, len(r.switches), o.deploys, r.loadTime.Round(100*time.Millisecond))
		if r.system == "slipway" {
			fmt.Printf("; deploy (gate+swap+drain) median %s, max %s; gate median %s; requests cut at drain deadline %d\n",
				med(took).Round(time.Millisecond), slices.Max(append(took, 0)).Round(time.Millisecond), med(gate).Round(time.Millisecond), cut)
		} else {
			fmt.Printf("; health wait median %s; reload = config rewrite + SIGHUP; old backend stopped %s after the reload\n",
				med(gate).Round(time.Millisecond), o.grace)
		}
		if s := sums[i]; len(s.errExamples) > 0 {
			fmt.Printf("  failures seen: %s\n", strings.Join(s.errExamples, "; "))
		}
		for _, e := range r.deployErr {
			fmt.Printf("  deploy error: %s\n", e)
		}
	}
	fmt.Println("\nfailed = connection errors + 5xx + other non-200; mixed = body and X-Release disagree; stale = served by a release")
	fmt.Println("already replaced when the request was due; early = served by a release that took over only after the answer")
	fmt.Println("(nginx: 'took over' = reload signal sent). Latency is from the intended send time (open loop).")
	if len(sums) == 2 {
		f0 := sums[0].connErr + sums[0].status5xx + sums[0].otherStatus
		f1 := sums[1].connErr + sums[1].status5xx + sums[1].otherStatus
		fmt.Printf("\n%s vs %s: failed %d vs %d; p99 %s vs %s (%.2f×); p99 of fast requests %s vs %s (%.2f×)\n",
			reports[0].system, reports[1].system, f0, f1,
			proxybench.Ms(sums[0].p99), proxybench.Ms(sums[1].p99), ratio(sums[0].p99, sums[1].p99),
			proxybench.Ms(sums[0].p99fast), proxybench.Ms(sums[1].p99fast), ratio(sums[0].p99fast, sums[1].p99fast))
		verdict := "PASS"
		if f0 != 0 || sums[0].mixed != 0 || sums[0].stale != 0 {
			verdict = "MISS"
		}
		fmt.Printf("goal: slipway 0 failed, 0 mixed, 0 stale: %s\n", verdict)
	}
}

func med(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// stopLoadAfter ends the load (stop) after the duration, and not before the last
// deploy finished (deploysDone) and its slow requests could have completed.
func stopLoadAfter(ctx context.Context, o options, deploysDone <-chan struct{}, stop func()) {
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
		return
	}
	select {
	case <-deploysDone:
		select {
		case <-time.After(o.slow + 500*time.Millisecond):
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	stop()
}
