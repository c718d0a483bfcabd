package main

// The modes beyond plain proxying (see README.md):
//
//	hosts   p99 at a fixed rate spread over many stores' hosts, router vs
//	        the same load sent straight to the instances
//	static  the router serving a Next.js-like tree of hashed assets vs nginx `root`
//	cache   the router's edge cache vs nginx proxy_cache, same backend and files
//	rss     the router's peak RSS under saturation vs kamal-proxy's
//	        (-kamal-proxy PATH or SLIPWAY_BENCH_KAMAL_PROXY; built by you
//	        from source into a temporary directory, never committed), each
//	        run in its own network namespace (unshare -n) on loopback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// serveBackends listens on n ports with the benchmark app and prints each address.
func serveBackends(n, body int) error {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs = append(addrs, l.Addr().String())
		srv := &http.Server{Handler: proxybench.Backend("1", body, 0), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
	}
	fmt.Printf("LISTEN %s\n", addrs[0])
	fmt.Printf("ADDRS %s\n", strings.Join(addrs, ","))
	select {}
}

// serveFiles is the cache mode's app: the asset tree with the headers a
// Next.js server sends for /_next/static/.
func serveFiles(dir string) error {
	fs := http.FileServer(http.Dir(dir))
	return proxybench.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		fs.ServeHTTP(w, r)
	}))
}

// serveRouterMode is the router child of the hosts, static and cache modes.
func serveRouterMode(o options) error {
	if o.cpuprofile != "" || o.memprofile != "" {
		stop, err := startProfile(o.cpuprofile, o.memprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var opts []proxy.Option
	opts = append(opts, proxy.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if o.cache {
		opts = append(opts, proxy.WithEdgeCache("", 256<<20, 0))
	}
	r, err := proxy.NewRouter("", opts...)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch {
	case o.static != "":
		_, err = r.Deploy(ctx, proxy.DeployRequest{Service: "bench/site", Hosts: []string{"127.0.0.1", "localhost"}, Static: &proxy.StaticSite{Dir: o.static}})
	case strings.Contains(o.backend, ","):
		for i, b := range strings.Split(o.backend, ",") {
			_, err = r.Deploy(ctx, proxy.DeployRequest{Service: fmt.Sprintf("s%02d/app", i), Hosts: []string{hostN(i)},
				Targets: []string{b}, Health: proxy.HealthCheck{Path: "/health", Deadline: 10 * time.Second}})
			if err != nil {
				break
			}
		}
	default:
		// The files backend has no /health; "/" lists the tree.
		_, err = r.Deploy(ctx, proxy.DeployRequest{Service: "bench/app", Hosts: []string{"127.0.0.1", "localhost"},
			Targets: []string{o.backend}, Health: proxy.HealthCheck{Path: "/", Deadline: 10 * time.Second}})
	}
	if err != nil {
		return err
	}
	if o.std {
		return proxybench.Serve(r)
	}
	return serveProduction(r)
}

// profileArgs adds -cpuprofile (and -memprofile) to a router child's arguments.
func profileArgs(o options, args ...string) []string {
	if o.cpuprofile != "" {
		args = append(args, "-cpuprofile", o.cpuprofile)
	}
	if o.memprofile != "" {
		args = append(args, "-memprofile", o.memprofile)
	}
	return args
}

// startProfile starts a CPU profile into cpu (when set); stop writes it and
// the allocation profile into mem (when set).
func startProfile(cpu, mem string) (func(), error) {
	var f *os.File
	if cpu != "" {
		var err error
		if f, err = os.Create(cpu); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		if mem != "" {
			if m, err := os.Create(mem); err == nil {
				pprof.Lookup("allocs").WriteTo(m, 0)
				m.Close()
			}
		}
	}, nil
}

func hostN(i int) string { return fmt.Sprintf("s%02d.localhost", i) }

// addrsLine reads the ADDRS line a backends child prints.
func addrsLine(c *proxybench.Child) ([]string, error) {
	select {
	case l := <-c.Lines:
		if a, ok := strings.CutPrefix(l, "ADDRS "); ok {
			return strings.Split(a, ","), nil
		}
		return nil, fmt.Errorf("backends child said %q", l)
	case <-time.After(10 * time.Second):
		return nil, errors.New("backends child printed no addresses")
	}
}

// benchHosts: -hosts stores' hosts, -rate req/s spread over them, router vs direct.
func benchHosts(ctx context.Context, o options) error {
	be, err := proxybench.StartChild("-role", "backends", "-n", strconv.Itoa(o.hosts), "-body", strconv.Itoa(o.body))
	if err != nil {
		return err
	}
	defer be.Stop()
	addrs, err := addrsLine(be)
	if err != nil {
		return err
	}
	router, err := proxybench.StartChild("-role", "router-mode", "-backend", strings.Join(addrs, ","))
	if err != nil {
		return err
	}
	defer router.Stop()
	client := proxybench.Client(10 * time.Second)
	direct := func(i int) (string, string) { return "http://" + addrs[i%len(addrs)] + "/", "" }
	routed := func(i int) (string, string) { return "http://" + router.Addr + "/", hostN(i % len(addrs)) }
	kinds := []struct {
		name string
		url  func(int) (string, string)
	}{{"direct", direct}, {"slipway", routed}}
	if o.withStd {
		std, err := proxybench.StartChild("-role", "router-mode", "-backend", strings.Join(addrs, ","), "-std")
		if err != nil {
			return err
		}
		defer std.Stop()
		kinds = append(kinds, struct {
			name string
			url  func(int) (string, string)
		}{"slip-std", func(i int) (string, string) { return "http://" + std.Addr + "/", hostN(i % len(addrs)) }})
	}
	load0 := loadavg()
	rounds := max(1, o.rounds)
	slice := o.duration / time.Duration(rounds)
	runs := make([][]run, len(kinds))
	for _, k := range kinds {
		hostsRate(ctx, client, k.url, o.rate, o.warmup)
	}
	for round := range rounds {
		if o.together {
			rs := together(len(kinds), func(i int) run { return hostsRate(ctx, client, kinds[i].url, o.rate, slice) })
			for i, r := range rs {
				runs[i] = append(runs[i], r)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		for j := range kinds {
			i := j
			if round%2 == 1 {
				i = len(kinds) - 1 - j
			}
			runs[i] = append(runs[i], hostsRate(ctx, client, kinds[i].url, o.rate, slice))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	fmt.Printf("Many hosts: %d stores' hosts, %d req/s spread over them for %s per target (%d %s rounds), open loop\n", o.hosts, o.rate, slice*time.Duration(rounds), rounds, roundsKind(o))
	fmt.Printf("load average at start: %s, at the end: %s (the machine is shared)\n", load0, loadavg())
	var rows []row
	for i, k := range kinds {
		rows = append(rows, merge(k.name, runs[i]))
	}
	printRows(rows)
	fmt.Printf("\n%-34s %10s %10s %7s %7s  %s\n", "metric", "slipway", "direct", "ratio", "goal", "verdict")
	verdict("p99, median of rounds", proxybench.Ms(rows[1].medP99), proxybench.Ms(rows[0].medP99), float64(rows[1].medP99)/float64(rows[0].medP99), 1.5, true)
	info("p99, all samples", rows[1].p99, rows[0].p99)
	info("p50", rows[1].p50, rows[0].p50)
	return nil
}

// hostsRate is fixedRate with a URL and Host per request.
func hostsRate(ctx context.Context, c *http.Client, url func(int) (string, string), rate int, dur time.Duration) run {
	n := int(float64(rate) * dur.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	start := time.Now()
	sent := proxybench.OpenLoop(ctx, rate, dur, func(i int, intended time.Time) {
		u, host := url(i)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if host != "" {
			req.Host = host
		}
		res, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		lat[i] = time.Since(intended)
		ok[i] = err == nil && res.StatusCode == 200
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

// writeTree writes a Next.js-like export: hashed chunks and CSS under
// /_next/static/, media, and a few pages. It returns the asset paths.
func writeTree(dir string) ([]string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var paths []string
	put := func(p string, size int) error {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz{}();=\n"[rng.IntN(33)]
		}
		paths = append(paths, "/"+p)
		return os.WriteFile(full, b, 0o644)
	}
	hash := func() string { return fmt.Sprintf("%016x", rng.Uint64()) }
	for i := range 80 {
		if err := put(fmt.Sprintf("_next/static/chunks/%d-%s.js", i, hash()), 1<<10+rng.IntN(60<<10)); err != nil {
			return nil, err
		}
	}
	for i := range 10 {
		if err := put(fmt.Sprintf("_next/static/css/%s.css", hash()), 2<<10+rng.IntN(30<<10)); err != nil {
			return nil, err
		}
		if err := put(fmt.Sprintf("_next/static/media/font-%d.%s.woff2", i, hash()[:8]), 10<<10+rng.IntN(20<<10)); err != nil {
			return nil, err
		}
	}
	assets := slices.Clone(paths)
	for _, p := range []string{"index.html", "about.html", "products.html", "404.html"} {
		if err := put(p, 8<<10+rng.IntN(20<<10)); err != nil {
			return nil, err
		}
	}
	return assets, nil
}

// wrkScript writes a wrk Lua script that walks paths round robin.
func wrkScript(dir string, paths []string) (string, error) {
	var b strings.Builder
	b.WriteString("local paths = {\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "  %q,\n", p)
	}
	b.WriteString("}\nlocal i = 0\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")
	p := filepath.Join(dir, "paths.lua")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// wrkRun runs wrk with a script and returns requests per second.
func wrkRun(ctx context.Context, url, script string, conns int, d time.Duration) (proxybench.WrkResult, error) {
	bin := proxybench.WrkPath()
	if bin == "" {
		return proxybench.WrkResult{}, errors.New("wrk is not installed (apt-get install -y wrk)")
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t1", "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(1, int(d.Seconds()))),
		"--latency", "-s", script, url).CombinedOutput()
	if err != nil {
		return proxybench.WrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return proxybench.ParseWrk(string(out))
}

// benchFiles runs the static and cache modes: two targets serving the same
// asset tree, measured with wrk walking every asset, rounds interleaved.
func benchFiles(ctx context.Context, o options, mode string) error {
	dir, err := os.MkdirTemp("", "slipway-bench-files-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	site := filepath.Join(dir, "site")
	assets, err := writeTree(site)
	if err != nil {
		return err
	}
	script, err := wrkScript(dir, assets)
	if err != nil {
		return err
	}
	nginxBin := proxybench.NginxPath()
	if nginxBin == "" {
		return errors.New("nginx is not installed (apt-get install -y nginx)")
	}
	var router *proxybench.Child
	var conf func(listen string) string
	peer, goal := "nginx root", 0.7
	switch mode {
	case "static":
		router, err = proxybench.StartChild(profileArgs(o, "-role", "router-mode", "-static", site)...)
		conf = func(listen string) string { return proxybench.NginxStaticConf(dir, listen, site) }
	case "cache":
		peer, goal = "nginx proxy_cache", 0.8
		files, ferr := proxybench.StartChild("-role", "files", "-dir", site)
		if ferr != nil {
			return ferr
		}
		defer files.Stop()
		router, err = proxybench.StartChild(profileArgs(o, "-role", "router-mode", "-backend", files.Addr, "-cache")...)
		conf = func(listen string) string { return proxybench.NginxCacheConf(dir, listen, files.Addr) }
	}
	if err != nil {
		return err
	}
	defer router.Stop()
	ngx, err := proxybench.StartNginxConf(nginxBin, dir, conf)
	if err != nil {
		return err
	}
	defer ngx.Stop()
	targets := []target{{"slipway", router.Addr, router.Pid()}, {"nginx", ngx.Addr, ngx.Pid()}}
	client := proxybench.Client(10 * time.Second)
	for _, t := range targets {
		for _, p := range assets { // fills both caches
			if st, _, _, err := proxybench.Get(client, "http://"+t.addr+p); err != nil || st != 200 {
				return fmt.Errorf("%s %s: %d %v", t.name, p, st, err)
			}
		}
	}
	rounds := max(1, o.rounds)
	slice := max(time.Second, (o.duration / time.Duration(rounds)).Truncate(time.Second))
	rps := make([][]float64, len(targets))
	cpu := make([]time.Duration, len(targets))
	reqs := make([]int, len(targets))
	measure := func(i int) error {
		cpu0 := proxybench.CPUTime(targets[i].pid)
		w, err := wrkRun(ctx, "http://"+targets[i].addr, script, o.conns, slice)
		if err != nil {
			return err
		}
		cpu[i] += proxybench.CPUTime(targets[i].pid) - cpu0
		reqs[i] += w.Requests
		if w.Errors > 0 {
			return fmt.Errorf("%s: %d errors", targets[i].name, w.Errors)
		}
		rps[i] = append(rps[i], w.RPS)
		return nil
	}
	for round := range rounds {
		if o.together {
			// Both at once, one wrk each: whatever else runs on the
			// machine takes from both alike, and they share the cores.
			errs := make([]error, len(targets))
			var wg sync.WaitGroup
			for i := range targets {
				wg.Go(func() { errs[i] = measure(i) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return err
			}
			continue
		}
		for j := range targets {
			i := j
			if round%2 == 1 {
				i = len(targets) - 1 - j
			}
			if err := measure(i); err != nil {
				return err
			}
		}
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	how := "interleaved rounds"
	if o.together {
		how = "rounds with both targets loaded at once"
	}
	fmt.Printf("%s: %d hashed assets (1-60 KiB), wrk -t1 -c%d walking all of them, %d %s of %s, load average %s\n", mode, len(assets), o.conns, rounds, how, slice, loadavg())
	fmt.Printf("%-10s %12s %12s  %s\n", "target", "req/s", "CPU/req", "rounds' req/s")
	for i, t := range targets {
		per := 0.0
		if reqs[i] > 0 {
			per = float64(cpu[i]) / float64(reqs[i]) / 1e3
		}
		fmt.Printf("%-10s %12.0f %10.1fµs  %v\n", t.name, med(rps[i]), per, fmtRates(rps[i]))
	}
	fmt.Printf("\n%-34s %10s %10s %7s %7s  %s\n", "metric", "slipway", peer, "ratio", "goal", "verdict")
	var ratios []float64
	for r := range min(len(rps[0]), len(rps[1])) {
		ratios = append(ratios, rps[0][r]/rps[1][r])
	}
	if o.together {
		// Both ran in the same seconds: each round's ratio is a fair
		// pair, and their median is the verdict.
		verdict("throughput, median of rounds' ratios", fmt.Sprintf("%.0f", med(rps[0])), fmt.Sprintf("%.0f", med(rps[1])), med(ratios), goal, false)
	} else {
		verdict("throughput, median of rounds (req/s)", fmt.Sprintf("%.0f", med(rps[0])), fmt.Sprintf("%.0f", med(rps[1])), med(rps[0])/med(rps[1]), goal, false)
	}
	cpuRatio := 0.0
	if reqs[0] > 0 && reqs[1] > 0 && cpu[1] > 0 {
		cpuRatio = (float64(cpu[0]) / float64(reqs[0])) / (float64(cpu[1]) / float64(reqs[1]))
	}
	fmt.Printf("rounds' ratios: %s; CPU per request %.2f× %s's\n", fmtRatios(ratios), cpuRatio, peer)
	return nil
}

func fmtRatios(x []float64) string {
	var s []string
	for _, v := range x {
		s = append(s, fmt.Sprintf("%.2f×", v))
	}
	return strings.Join(s, " ")
}

func fmtRates(x []float64) string {
	var s []string
	for _, v := range x {
		s = append(s, fmt.Sprintf("%.0f", v))
	}
	return strings.Join(s, " ")
}

// benchRSS measures each proxy's peak RSS under saturation, each in its
// own network namespace with its own backend and wrk.
func benchRSS(ctx context.Context, o options) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	kp := cmpOr(o.kamalProxy, os.Getenv("SLIPWAY_BENCH_KAMAL_PROXY"))
	proxies := []string{"slipway"}
	if kp != "" {
		proxies = append(proxies, "kamal-proxy")
	}
	rss := map[string][]float64{}
	rps := map[string][]float64{}
	for round := range max(1, o.rounds) {
		for _, p := range proxies {
			out, err := exec.CommandContext(ctx, "unshare", "-n", exe, "-role", "rss-ns", "-proxy", p, "-kamal-proxy", kp,
				"-conns", strconv.Itoa(o.conns), "-duration", (o.duration / time.Duration(max(1, o.rounds))).String()).Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return fmt.Errorf("rss %s (round %d): %v: %s", p, round, err, ee.Stderr)
				}
				return fmt.Errorf("rss %s: %w (needs unshare -n: root or user namespaces)", p, err)
			}
			var kib, r float64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "RSS %f %f", &kib, &r); err != nil {
				return fmt.Errorf("rss %s said %q", p, out)
			}
			rss[p], rps[p] = append(rss[p], kib/1024), append(rps[p], r)
		}
	}
	med := func(x []float64) float64 { s := slices.Clone(x); slices.Sort(s); return s[len(s)/2] }
	fmt.Printf("RSS under saturation (wrk -c%d, %s per round, %d rounds), peak resident set of the proxy process\n", o.conns, o.duration/time.Duration(max(1, o.rounds)), max(1, o.rounds))
	fmt.Printf("%-12s %10s %10s\n", "proxy", "peak MiB", "req/s")
	for _, p := range proxies {
		fmt.Printf("%-12s %10.1f %10.0f   rounds: %s MiB\n", p, med(rss[p]), med(rps[p]), fmtRates(rss[p]))
	}
	if kp == "" {
		fmt.Println("\nkamal-proxy: pass -kamal-proxy PATH (or SLIPWAY_BENCH_KAMAL_PROXY) for the comparison")
		return nil
	}
	fmt.Printf("\n%-34s %10s %10s %7s %7s  %s\n", "metric", "slipway", "kamal", "ratio", "goal", "verdict")
	verdict("peak RSS (MiB), median of rounds", fmt.Sprintf("%.1f", med(rss["slipway"])), fmt.Sprintf("%.1f", med(rss["kamal-proxy"])),
		med(rss["slipway"])/med(rss["kamal-proxy"]), 1.2, true)
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// rssInNamespace runs inside `unshare -n`: loopback up, a backend, the
// proxy, wrk; prints "RSS <peak KiB> <req/s>".
func rssInNamespace(o options) error {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	be, err := proxybench.StartChild("-role", "backend", "-body", strconv.Itoa(o.body))
	if err != nil {
		return err
	}
	defer be.Stop()
	var pid int
	var addr string
	switch o.proxy {
	case "slipway":
		r, err := proxybench.StartChild("-role", "router", "-backend", be.Addr)
		if err != nil {
			return err
		}
		defer r.Stop()
		pid, addr = r.Pid(), r.Addr
	case "kamal-proxy":
		p, stop, err := startKamal(o.kamalProxy, be.Addr)
		if err != nil {
			return err
		}
		defer stop()
		pid, addr = p, "127.0.0.1:18080"
	default:
		return fmt.Errorf("unknown -proxy %q", o.proxy)
	}
	if err := proxybench.WaitHealthy(addr, "/", 10*time.Second); err != nil {
		return err
	}
	done := make(chan struct{})
	peak := make(chan int)
	go func() {
		maxKiB := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if k := rssKiB(pid); k > maxKiB {
				maxKiB = k
			}
			select {
			case <-done:
				peak <- maxKiB
				return
			case <-tick.C:
			}
		}
	}()
	w, err := proxybench.Wrk(context.Background(), proxybench.WrkPath(), "http://"+addr+"/", 1, o.conns, max(time.Second, o.duration.Truncate(time.Second)))
	close(done)
	p := <-peak
	if err != nil {
		return err
	}
	fmt.Printf("RSS %d %.0f\n", p, w.RPS)
	return nil
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// startKamal runs kamal-proxy (inside the namespace) on :18080 with its
// state in a temporary directory and deploys the backend as its target.
func startKamal(bin, backend string) (int, func(), error) {
	if bin == "" {
		return 0, nil, errors.New("no kamal-proxy binary")
	}
	dir, err := os.MkdirTemp("", "kamal-bench-")
	if err != nil {
		return 0, nil, err
	}
	env := append(os.Environ(), "HOME="+dir, "XDG_RUNTIME_DIR="+dir)
	cmd := exec.Command(bin, "run", "--http-port", "18080", "--https-port", "18443")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); os.RemoveAll(dir) }
	deadline := time.Now().Add(10 * time.Second)
	for {
		dep := exec.Command(bin, "deploy", "bench", "--target", backend, "--health-check-path", "/health")
		dep.Env = env
		out, err := dep.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return 0, nil, fmt.Errorf("kamal-proxy deploy: %v: %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd.Process.Pid, stop, nil
}
