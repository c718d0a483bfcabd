// Command proxy measures the latency and throughput Slipway's router adds
// in front of an app, next to nginx proxying the same app, on loopback.
//
//	go run ./bench/proxy [-rate 1000] [-duration 10s] [-conns 64]
//
// It prints a table and the Slipway/nginx ratios; a missed goal is reported,
// not an error. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

type options struct {
	role, backend string
	rate          int
	duration      time.Duration
	warmup        time.Duration
	conns         int
	loadgen       string
	wrkThreads    int
	body          int
	rounds        int
	cpuprofile    string
	memprofile    string
	mode          string
	hosts, n      int
	static, dir   string
	cache         bool
	proxy         string
	kamalProxy    string
	std           bool
	withStd       bool
	together      bool
}

// together runs f for every target at once and returns the runs in order.
func together(n int, f func(i int) run) []run {
	out := make([]run, n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			out[i] = f(i)
			done <- struct{}{}
		}()
	}
	for range n {
		<-done
	}
	return out
}

func roundsKind(o options) string {
	if o.together {
		return "simultaneous"
	}
	return "interleaved"
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: run as a child (backend|router)")
	flag.StringVar(&o.backend, "backend", "", "internal: backend address for -role router")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second in the fixed-rate run")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per target and mode, split into -rounds")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds the duration is split into (evens out a shared machine's noise)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load on each target before the first round")
	flag.IntVar(&o.conns, "conns", 64, "connections in the saturation run")
	flag.StringVar(&o.loadgen, "loadgen", "auto", "saturation load generator: auto (wrk if installed), wrk or go")
	flag.IntVar(&o.wrkThreads, "wrk-threads", 1, "wrk threads (the proxies need the other cores)")
	flag.IntVar(&o.body, "body", 128, "response body size in bytes")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write the router child's CPU profile to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write the router child's allocation profile to this file (static and cache modes)")
	flag.StringVar(&o.mode, "mode", "plain", "plain (router vs nginx proxy_pass), hosts, static, cache, rss, or all")
	flag.IntVar(&o.hosts, "hosts", 30, "stores' hosts in -mode hosts")
	flag.StringVar(&o.kamalProxy, "kamal-proxy", "", "kamal-proxy binary for -mode rss (default $SLIPWAY_BENCH_KAMAL_PROXY); build it yourself into a temporary directory")
	flag.IntVar(&o.n, "n", 1, "internal: ports for -role backends")
	flag.StringVar(&o.static, "static", "", "internal: static site directory for -role router-mode")
	flag.StringVar(&o.dir, "dir", "", "internal: directory for -role files")
	flag.BoolVar(&o.cache, "cache", false, "internal: edge cache on, for -role router-mode")
	flag.StringVar(&o.proxy, "proxy", "", "internal: proxy measured by -role rss-ns")
	flag.BoolVar(&o.std, "std", false, "internal: serve the router with net/http only (no proxy.Front)")
	flag.BoolVar(&o.together, "together", false, "fixed-rate, hosts, static and cache runs: load every target at once in each round (each at -rate; one wrk each in static/cache), so a neighbour's CPU burst hits all of them alike")
	flag.BoolVar(&o.withStd, "with-nethttp", false, "plain mode: also measure the router served by net/http alone (no proxy.Front), as before")
	flag.Parse()

	var err error
	switch o.role {
	case "backend":
		err = proxybench.Serve(proxybench.Backend("1", o.body, 0))
	case "router":
		err = serveRouter(o.backend, o.cpuprofile, o.std)
	case "backends":
		err = serveBackends(o.n, o.body)
	case "files":
		err = serveFiles(o.dir)
	case "router-mode":
		err = serveRouterMode(o)
	case "rss-ns":
		err = rssInNamespace(o)
	case "":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = runModes(ctx, o)
		stop()
	default:
		err = fmt.Errorf("unknown -role %q", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

// serveRouter is the Slipway side: a router in its own process, like
// nginx, with one service whose single target is the backend.
func serveRouter(backend, cpuprofile string, std bool) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	r, err := proxy.NewRouter("", proxy.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	_, err = r.Deploy(context.Background(), proxy.DeployRequest{
		Service: "bench/app",
		Hosts:   []string{"127.0.0.1", "localhost"},
		Targets: []string{backend},
		Health:  proxy.HealthCheck{Path: "/health", Deadline: 10 * time.Second},
	})
	if err != nil {
		return err
	}
	if std {
		return proxybench.Serve(r)
	}
	return serveProduction(r)
}

// serveProduction serves r as `slipway serve` serves its plain listener:
// the default limits (LimitListener, NewHardenedServer) and proxy.Front,
// which answers the proxied requests itself and hands the rest to net/http.
func serveProduction(r *proxy.Router) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	lim := proxy.Limits{}
	srv := proxy.NewHardenedServer(r, lim)
	front := proxy.NewFront(r, lim, nil)
	fmt.Printf("LISTEN %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
		front.Wait(context.Background())
	}()
	if err := srv.Serve(front.Listener(proxy.LimitListener(l, lim))); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loadavg is the 1/5/15-minute load average, to say how busy the shared
// machine was during a run.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type target struct {
	name string
	addr string
	pid  int // the process whose CPU time is counted (with its children)
}

// run is one measured slice against one target.
type run struct {
	lat      []time.Duration // every latency, when the generator is ours
	p50, p99 time.Duration   // wrk's, when it is wrk
	n        int             // successful requests
	errors   int
	elapsed  time.Duration
}

// row is a target's runs merged.
type row struct {
	name          string
	p50, p99, max time.Duration
	medP99        time.Duration // median of the rounds' p99: one noisy round cannot move it
	rps           float64
	minRPS        float64
	maxRPS        float64
	errors        int
}

// merge pools the runs' samples when there are samples, else takes the
// median of the runs' percentiles; throughput is requests over time.
func merge(name string, runs []run) row {
	r := row{name: name, minRPS: -1}
	var all []time.Duration
	var p50s, p99s []time.Duration
	var n int
	var elapsed time.Duration
	for _, x := range runs {
		all = append(all, x.lat...)
		if x.lat == nil {
			p50s, p99s = append(p50s, x.p50), append(p99s, x.p99)
		} else {
			p99s = append(p99s, proxybench.Summarise(slices.Clone(x.lat)).P99)
		}
		n += x.n
		elapsed += x.elapsed
		r.errors += x.errors
		rps := float64(x.n) / x.elapsed.Seconds()
		if r.minRPS < 0 || rps < r.minRPS {
			r.minRPS = rps
		}
		r.maxRPS = max(r.maxRPS, rps)
	}
	r.medP99 = median(p99s)
	if len(all) > 0 {
		st := proxybench.Summarise(all)
		r.p50, r.p99, r.max = st.P50, st.P99, st.Max
	} else {
		r.p50, r.p99 = median(p50s), median(p99s)
	}
	r.rps = float64(n) / elapsed.Seconds()
	return r
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return s[len(s)/2]
}

func bench(ctx context.Context, o options) error {
	backend, err := proxybench.StartChild("-role", "backend", "-body", fmt.Sprint(o.body))
	if err != nil {
		return err
	}
	defer backend.Stop()
	routerArgs := []string{"-role", "router", "-backend", backend.Addr}
	if o.cpuprofile != "" {
		routerArgs = append(routerArgs, "-cpuprofile", o.cpuprofile)
	}
	router, err := proxybench.StartChild(routerArgs...)
	if err != nil {
		return err
	}
	defer router.Stop()
	targets := []target{{"direct", backend.Addr, backend.Pid()}, {"slipway", router.Addr, router.Pid()}}
	if o.withStd {
		std, err := proxybench.StartChild("-role", "router", "-backend", backend.Addr, "-std")
		if err != nil {
			return err
		}
		defer std.Stop()
		targets = append(targets, target{"slip-std", std.Addr, std.Pid()})
	}

	nginxBin, nginxNote := proxybench.NginxPath(), ""
	if nginxBin == "" {
		nginxNote = "nginx is not installed (apt-get install -y nginx): nginx column skipped"
	} else {
		dir, err := os.MkdirTemp("", "slipway-bench-nginx-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		ngx, err := proxybench.StartNginx(nginxBin, dir, []string{backend.Addr})
		if err != nil {
			return err
		}
		defer ngx.Stop()
		targets = append(targets, target{"nginx", ngx.Addr, ngx.Pid()})
		nginxNote = proxybench.NginxVersion(nginxBin) + fmt.Sprintf(" (worker_processes %d, upstream keepalive 256)", runtime.NumCPU())
	}
	for _, t := range targets {
		if err := proxybench.WaitHealthy(t.addr, "/", 10*time.Second); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}

	wrk := ""
	switch o.loadgen {
	case "auto":
		wrk = proxybench.WrkPath()
	case "wrk":
		if wrk = proxybench.WrkPath(); wrk == "" {
			return errors.New("-loadgen wrk: wrk is not installed")
		}
	case "go":
	default:
		return fmt.Errorf("unknown -loadgen %q", o.loadgen)
	}

	fmt.Printf("bench/proxy: Slipway router vs nginx on 127.0.0.1 — %d CPUs, %s %s/%s\n", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("backend: Go net/http, %d-byte body, child process; slipway: internal/proxy Router in a child process\n", o.body)
	fmt.Printf("nginx: %s\n", nginxNote)
	fmt.Printf("load average at start: %s (the machine is shared: compare the rounds' range)\n\n", loadavg())
	defer func() { fmt.Printf("load average at the end: %s\n", loadavg()) }()

	client := proxybench.Client(10 * time.Second)
	for _, t := range targets {
		warm(ctx, client, t, o.warmup)
	}
	rounds := max(1, o.rounds)
	slice := o.duration / time.Duration(rounds)
	// wrk takes whole seconds.
	wslice := max(time.Second, slice.Truncate(time.Second))

	// Targets take turns, in alternating order, so that whatever else the
	// machine is doing hits them alike.
	order := func(round int) []int {
		idx := make([]int, len(targets))
		for i := range idx {
			idx[i] = i
			if round%2 == 1 {
				idx[i] = len(targets) - 1 - i
			}
		}
		return idx
	}
	fixedRuns := make([][]run, len(targets))
	for round := range rounds {
		if o.together {
			rs := together(len(targets), func(i int) run { return fixedRate(ctx, client, targets[i], o.rate, slice) })
			for i, r := range rs {
				fixedRuns[i] = append(fixedRuns[i], r)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		for _, i := range order(round) {
			warm(ctx, client, targets[i], 200*time.Millisecond)
			fixedRuns[i] = append(fixedRuns[i], fixedRate(ctx, client, targets[i], o.rate, slice))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	var fixed []row
	for i, t := range targets {
		fixed = append(fixed, merge(t.name, fixedRuns[i]))
	}
	fmt.Printf("Fixed rate: %d req/s for %s per target (%d %s rounds), open loop: latency from the intended send time, Go client\n", o.rate, slice*time.Duration(rounds), rounds, roundsKind(o))
	printRows(fixed)

	// The fixed-rate client may hold hundreds of idle connections after a
	// stall; the router's per-IP limit (1024, as in serve) would refuse
	// wrk's if they stayed.
	client.CloseIdleConnections()
	satRuns := make([][]run, len(targets))
	cpu := make([]time.Duration, len(targets))
	for round := range rounds {
		for _, i := range order(round) {
			t := targets[i]
			warm(ctx, client, t, 200*time.Millisecond)
			cpu0 := proxybench.CPUTime(t.pid)
			var r run
			if wrk != "" {
				w, err := proxybench.Wrk(ctx, wrk, "http://"+t.addr+"/", o.wrkThreads, o.conns, wslice)
				if err != nil {
					return err
				}
				r = run{p50: w.P50, p99: w.P99, n: w.Requests, errors: w.Errors, elapsed: wslice}
			} else {
				r = closedLoop(ctx, client, t, o.conns, slice)
			}
			cpu[i] += proxybench.CPUTime(t.pid) - cpu0
			satRuns[i] = append(satRuns[i], r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	var sat []row
	for i, t := range targets {
		sat = append(sat, merge(t.name, satRuns[i]))
	}
	gen := "Go client"
	if wrk != "" {
		gen = fmt.Sprintf("wrk -t%d --latency; p50/p99 are the median of the rounds' values", o.wrkThreads)
		slice = wslice
	}
	fmt.Printf("\nSaturation: %d connections for %s per target (%d interleaved rounds), closed loop, %s\n", o.conns, slice*time.Duration(rounds), rounds, gen)
	printRows(sat)
	perReq := make([]time.Duration, len(targets))
	fmt.Printf("\nCPU per request in the saturation runs (user+system of the process and its workers, from /proc):\n")
	for i, t := range targets {
		var n int
		for _, r := range satRuns[i] {
			n += r.n
		}
		if n > 0 {
			perReq[i] = cpu[i] / time.Duration(n)
		}
		fmt.Printf("  %-8s %6.1f µs\n", t.name, float64(perReq[i])/float64(time.Microsecond))
	}

	if nginxBin == "" {
		fmt.Printf("\n%s; no ratios.\n", nginxNote)
		return nil
	}
	s, n := 1, len(targets)-1
	fmt.Printf("\nSlipway vs nginx\n")
	fmt.Printf("%-34s %10s %10s %7s %7s  %s\n", "metric", "slipway", "nginx", "ratio", "goal", "verdict")
	verdict(fmt.Sprintf("fixed-rate p99, median of rounds"), proxybench.Ms(fixed[s].medP99), proxybench.Ms(fixed[n].medP99),
		float64(fixed[s].medP99)/float64(fixed[n].medP99), 1.1, true)
	verdict("saturation throughput (req/s)", fmt.Sprintf("%.0f", sat[s].rps), fmt.Sprintf("%.0f", sat[n].rps), sat[s].rps/sat[n].rps, 0.75, false)
	if perReq[n] > 0 {
		fmt.Printf("%-34s %8.1fµs %8.1fµs %6.2f× %7s  %s\n", "CPU per request (router itself)", float64(perReq[s])/1e3, float64(perReq[n])/1e3,
			float64(perReq[s])/float64(perReq[n]), "-", "info")
	}
	info("fixed-rate p99, all samples", fixed[s].p99, fixed[n].p99)
	info("fixed-rate p50", fixed[s].p50, fixed[n].p50)
	info("saturation p50", sat[s].p50, sat[n].p50)
	info("saturation p99, median of rounds", sat[s].medP99, sat[n].medP99)
	fmt.Printf("\nAdded over direct at the fixed rate, p50: slipway +%s, nginx +%s\n",
		proxybench.Ms(fixed[s].p50-fixed[0].p50), proxybench.Ms(fixed[n].p50-fixed[0].p50))
	return nil
}

func warm(ctx context.Context, c *http.Client, t target, d time.Duration) {
	if d <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	proxybench.ClosedLoop(wctx, 16, d, func() error {
		_, _, _, err := proxybench.Get(c, "http://"+t.addr+"/")
		return err
	})
}

func fixedRate(ctx context.Context, c *http.Client, t target, rate int, dur time.Duration) run {
	n := int(float64(rate) * dur.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	url := "http://" + t.addr + "/"
	start := time.Now()
	sent := proxybench.OpenLoop(ctx, rate, dur, func(i int, intended time.Time) {
		status, _, _, err := proxybench.Get(c, url)
		lat[i] = time.Since(intended)
		ok[i] = err == nil && status == 200
	})
	r := run{elapsed: time.Since(start)}
	for i := range sent {
		if ok[i] {
			r.lat = append(r.lat, lat[i])
		} else {
			r.errors++
		}
	}
	r.n = len(r.lat)
	return r
}

func closedLoop(ctx context.Context, c *http.Client, t target, conns int, dur time.Duration) run {
	url := "http://" + t.addr + "/"
	start := time.Now()
	lat, errs := proxybench.ClosedLoop(ctx, conns, dur, func() error {
		status, _, _, err := proxybench.Get(c, url)
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		return err
	})
	return run{lat: lat, n: len(lat), errors: errs, elapsed: time.Since(start)}
}

func printRows(rows []row) {
	fmt.Printf("%-8s %9s %9s %12s %10s %10s %17s %7s\n", "target", "p50", "p99", "p99 (median", "max", "req/s", "rounds' req/s", "errors")
	fmt.Printf("%-8s %9s %9s %12s\n", "", "", "", "of rounds)")
	for _, r := range rows {
		maxs, p99 := "-", "-"
		if r.max > 0 {
			maxs, p99 = proxybench.Ms(r.max), proxybench.Ms(r.p99)
		}
		fmt.Printf("%-8s %9s %9s %12s %10s %10.0f %17s %7d\n", r.name, proxybench.Ms(r.p50), p99, proxybench.Ms(r.medP99), maxs, r.rps,
			fmt.Sprintf("%.0f–%.0f", r.minRPS, r.maxRPS), r.errors)
	}
}

// verdict prints one goal line; lowerIsBetter says whether the ratio
// slipway/nginx must stay under goal (latency) or over it (throughput).
func verdict(name, s, n string, ratio, goal float64, lowerIsBetter bool) {
	ok := ratio >= goal
	g := fmt.Sprintf("≥%.2f×", goal)
	if lowerIsBetter {
		ok = ratio <= goal
		g = fmt.Sprintf("≤%.2f×", goal)
	}
	v := "MISS"
	if ok {
		v = "PASS"
	}
	fmt.Printf("%-34s %10s %10s %6.2f× %7s  %s\n", name, s, n, ratio, g, v)
}

func info(name string, s, n time.Duration) {
	fmt.Printf("%-34s %10s %10s %6.2f× %7s  %s\n", name, proxybench.Ms(s), proxybench.Ms(n), float64(s)/float64(n), "-", "info")
}

// runModes runs the chosen mode, or every mode one after the other.
func runModes(ctx context.Context, o options) error {
	modes := []string{o.mode}
	if o.mode == "all" {
		modes = []string{"plain", "hosts", "static", "cache", "rss"}
	}
	for i, m := range modes {
		if i > 0 {
			fmt.Println()
		}
		var err error
		switch m {
		case "plain":
			err = bench(ctx, o)
		case "hosts":
			err = benchHosts(ctx, o)
		case "static", "cache":
			err = benchFiles(ctx, o, m)
		case "rss":
			err = benchRSS(ctx, o)
		default:
			err = fmt.Errorf("unknown -mode %q", m)
		}
		if err != nil {
			return fmt.Errorf("-mode %s: %w", m, err)
		}
	}
	return nil
}
