//go:build linux

package main

// The full-stack section (-stack slipway): the real product path instead of
// the router alone. It builds cmd/slipway, copies examples/multistore into a
// git repository in a temporary directory, runs `slipway serve` on it
// (process runtime, embedded image store), deploys store us once, then sends
// the same open-loop load through the router (Host us.localhost) while
// `slipway deploy --store-id us --deploy-only` runs -deploys times in a row.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

const (
	stackStore   = "us"                        // the store the bench redeploys
	stackApp     = "storefront-unified-nextjs" // its storefront, on us.localhost
	stackHost    = "us.localhost"
	stackExample = "examples/multistore"
)

// stackDeploy is one `slipway deploy --deploy-only` run.
type stackDeploy struct {
	release  int // from the CLI's summary table; -1 if unknown
	start    time.Time
	took     time.Duration // CLI wall time
	exitCode int
	out      string // the CLI's output, kept for a failing run
}

// serveLog follows `slipway serve`'s log: which release each storefront
// instance belongs to, and when the router swapped to it and drained.
type serveLog struct {
	mu       sync.Mutex
	current  int               // release of the deploy in progress
	addrRel  map[string]int    // storefront instance address -> release
	switches []switchover      // storefront swaps; at = the log line's timestamp
	gateAt   map[int]time.Time // when the router's gate for a release began (logged before its swap)
	releases map[int]bool      // releases the server created
	problems []string          // WARN/ERROR lines, and every line about a crash or restart
	lines    int
	ready    chan string // the router address, once
}

var (
	relMsg     = regexp.MustCompile(`^release ` + stackStore + `-v(\d+) `)
	startedMsg = regexp.MustCompile(`^started ` + stackApp + ` at (\S+)$`)
	relInBody  = regexp.MustCompile(`id="release">([^<]*)<`)
	relNumber  = regexp.MustCompile(`^` + stackStore + `-v(\d+)$`)
)

// slogFields splits a log/slog text line into its key=value pairs.
func slogFields(line string) map[string]string {
	f := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key, rest := line[:eq], line[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		f[key] = val
		line = rest
	}
	return f
}

func (l *serveLog) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	if a, ok := strings.CutPrefix(s, "slipway serve: router on http://"); ok {
		if i := strings.IndexByte(a, ','); i >= 0 {
			a = a[:i]
		}
		select {
		case l.ready <- a:
		default:
		}
		return
	}
	f := slogFields(s)
	msg := f["msg"]
	if lvl := f["level"]; lvl == "WARN" || lvl == "ERROR" || strings.Contains(msg, "restart") || strings.Contains(msg, "exited") || strings.Contains(msg, "crash") {
		if len(l.problems) < 200 {
			l.problems = append(l.problems, s)
		}
	}
	if m := relMsg.FindStringSubmatch(msg); m != nil {
		l.current, _ = strconv.Atoi(m[1])
		l.releases[l.current] = true
		return
	}
	if m := startedMsg.FindStringSubmatch(msg); m != nil {
		l.addrRel[m[1]] = l.current
		return
	}
	if f["service"] != stackStore+"/"+stackApp {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, f["time"])
	if err != nil {
		return
	}
	switch msg {
	case "health gate":
		if active := strings.Fields(strings.Trim(f["targets"], "[]")); len(active) > 0 {
			if r, ok := l.addrRel[active[0]]; ok {
				l.gateAt[r] = at
			}
		}
	case "swapped":
		active := strings.Fields(strings.Trim(f["active"], "[]"))
		rel := -1
		if len(active) > 0 {
			if r, ok := l.addrRel[active[0]]; ok {
				rel = r
			}
		}
		l.switches = append(l.switches, switchover{release: rel, at: at})
	case "drained":
		if n := len(l.switches); n > 0 {
			sw := &l.switches[n-1]
			sw.took, _ = time.ParseDuration(f["took"])
			sw.cut, _ = strconv.Atoi(f["cut"])
		}
	}
}

// stackRun is everything one full-stack run set up, for the clean-up.
type stackRun struct {
	dir   string // temporary directory: binary, repository, state
	addr  string // the router
	bin   string
	repo  string
	env   []string
	serve *exec.Cmd
	done  chan struct{} // closed when serve has exited
	log   *serveLog
}

// slipway runs the CLI on the repository and returns its combined output.
func (s *stackRun) slipway(ctx context.Context, timeout time.Duration, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append(args, "-C", s.repo)...)
	cmd.Env = s.env
	cmd.Dir = s.repo
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	return out.String(), code, err
}

// moduleRoot is the directory of the slipway module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench inside the slipway module (go run ./bench/cutover)")
	}
	b, err := os.ReadFile(gomod)
	if err != nil || !bytes.Contains(b, []byte("module github.com/slipway-dev/slipway\n")) {
		return "", fmt.Errorf("%s is not the slipway module", gomod)
	}
	return filepath.Dir(gomod), nil
}

// setupStack builds the binary, prepares the repository and starts serve.
// On error the returned run (if any) still needs cleanUp.
func setupStack(ctx context.Context, o options) (*stackRun, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return nil, errors.New("the example apps need Node.js 20 (node on PATH)")
	}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "slipway-cutover-stack-")
	if err != nil {
		return nil, err
	}
	s := &stackRun{dir: dir, bin: filepath.Join(dir, "slipway"), repo: filepath.Join(dir, "multistore"), env: proxybench.EnvWithout("SLIPWAY_"),
		log: &serveLog{addrRel: map[string]int{}, releases: map[int]bool{}, gateAt: map[int]time.Time{}, ready: make(chan string, 1)}}
	t := time.Now()
	if err := proxybench.Run(root, s.env, "go", "build", "-o", s.bin, "./cmd/slipway"); err != nil {
		return s, err
	}
	fmt.Printf("built %s in %s\n", s.bin, time.Since(t).Round(100*time.Millisecond))
	if err := proxybench.Run(root, s.env, "cp", "-a", stackExample, s.repo); err != nil {
		return s, err
	}
	git := func(args ...string) error {
		return proxybench.Run(s.repo, s.env, "git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"}, args...)...)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "bench/cutover full stack"}} {
		if err := git(args...); err != nil {
			return s, err
		}
	}
	addr, err := proxybench.FreePort()
	if err != nil {
		return s, err
	}
	cmd := exec.Command(s.bin, "serve", "-C", s.repo, "--http", addr)
	cmd.Dir, cmd.Env = s.repo, s.env
	// Its own process group (a Ctrl-C on the bench is the bench's to handle),
	// and SIGINT if the bench dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	cmd.Stdout = io.Discard
	logR, err := cmd.StderrPipe()
	if err != nil {
		return s, err
	}
	if err := cmd.Start(); err != nil {
		return s, err
	}
	s.serve, s.done, s.addr = cmd, make(chan struct{}), addr
	logFile, _ := os.Create(filepath.Join(dir, "serve.log"))
	go func() {
		sc := bufio.NewScanner(logR)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if logFile != nil {
				fmt.Fprintln(logFile, sc.Text())
			}
			s.log.line(sc.Text())
		}
		io.Copy(io.Discard, logR)
		cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(s.done)
	}()
	select {
	case a := <-s.log.ready:
		if a != addr {
			return s, fmt.Errorf("slipway serve listens on %s, asked for %s", a, addr)
		}
	case <-s.done:
		return s, fmt.Errorf("slipway serve exited at start (log: %s)", filepath.Join(dir, "serve.log"))
	case <-time.After(30 * time.Second):
		return s, errors.New("slipway serve did not start within 30s")
	case <-ctx.Done():
		return s, ctx.Err()
	}
	fmt.Printf("slipway serve on http://%s (process runtime, embedded image store), repository %s\n", addr, s.repo)

	t = time.Now()
	out, code, err := s.slipway(ctx, 10*time.Minute, "deploy", "--store-id", stackStore)
	if err != nil || code != 0 {
		return s, fmt.Errorf("slipway deploy --store-id %s: exit %d %v\n%s", stackStore, code, err, out)
	}
	fmt.Printf("slipway deploy --store-id %s (compose, build, pack, deploy): %s in %s\n", stackStore, releaseOf(out), time.Since(t).Round(10*time.Millisecond))
	// The store answers through the router.
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body, err := getHost(client, "http://"+addr+"/")
		if err == nil && st == 200 && relInBody.Match(body) {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("http://%s/ (Host %s) does not answer with a release: %d %v", addr, stackHost, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, nil
}

// releaseOf finds the release id in the CLI's summary table ("us  us-v7  live ...").
func releaseOf(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == stackStore && relNumber.MatchString(f[1]) {
			return f[1]
		}
	}
	return "?"
}

// getHost sends one GET for the store's host name through the router.
func getHost(c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Host = stackHost
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// proc is a process the clean-up can attribute to the run's directory.
type proc struct {
	pid, pgid int
	why       string
}

// procsUnder lists the processes (other than the bench) whose working
// directory, executable or command line lies under dir.
func procsUnder(dir string) []proc {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		p := "/proc/" + e.Name()
		why := ""
		if cwd, err := os.Readlink(p + "/cwd"); err == nil && under(cwd, dir) {
			why = "cwd " + cwd
		} else if exe, err := os.Readlink(p + "/exe"); err == nil && under(exe, dir) {
			why = "exe " + exe
		} else if cl, err := os.ReadFile(p + "/cmdline"); err == nil && bytes.Contains(cl, []byte(dir+"/")) {
			why = "cmdline " + strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '})))
		}
		if why == "" {
			continue
		}
		if st, err := os.ReadFile(p + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i >= 0 {
				f := bytes.Fields(st[i+1:])
				if len(f) > 2 && (f[0][0] == 'Z' || f[0][0] == 'X') {
					continue // exited; its parent reaps it
				}
				if len(f) > 2 {
					pg, _ := strconv.Atoi(string(f[2]))
					out = append(out, proc{pid: pid, pgid: pg, why: why})
				}
			}
		}
	}
	return out
}

func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

// cleanUp stops serve (SIGINT: it keeps the instances, by design), then
// every process attributable to the run's directory (the instances, each
// the leader of its own process group), and removes the directory. It
// returns what it stopped and whatever is left (should be nothing).
func (s *stackRun) cleanUp(keep bool) (stopped []proc, left []proc) {
	if s == nil {
		return nil, nil
	}
	if s.serve != nil {
		s.serve.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.serve.Process.Kill()
			<-s.done
		}
	}
	ownPG := syscall.Getpgrp()
	signal := func(ps []proc, sig syscall.Signal) {
		for _, p := range ps {
			if p.pgid == p.pid && p.pgid > 1 && p.pgid != ownPG {
				syscall.Kill(-p.pgid, sig)
			} else {
				syscall.Kill(p.pid, sig)
			}
		}
	}
	for round := 0; round < 3; round++ {
		ps := procsUnder(s.dir)
		if len(ps) == 0 {
			break
		}
		if round == 0 {
			stopped = ps
		}
		signal(ps, syscall.SIGTERM)
		for i := 0; i < 50 && len(procsUnder(s.dir)) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		signal(procsUnder(s.dir), syscall.SIGKILL)
		time.Sleep(200 * time.Millisecond)
	}
	left = procsUnder(s.dir)
	if !keep && len(left) == 0 {
		os.RemoveAll(s.dir)
	}
	return stopped, left
}

// stackResult is the full-stack run's outcome.
type stackResult struct {
	samples  []sample
	switches []switchover // storefront swaps, by time
	deploys  []stackDeploy
	loadTime time.Duration
	releases map[int]bool
	gateAt   map[int]time.Time
	problems []string
}

// runStack runs the full-stack section and prints its table, with the
// router-level rows (if they ran) as a reference.
func runStack(ctx context.Context, o options, ref []report) error {
	began := time.Now()
	fmt.Printf("\nbench/cutover full stack: slipway serve (process runtime, embedded image store) with %s, store %s; %d req/s to http://%s/ through the router, every %dth request /slow?ms=%d; %d × `slipway deploy --store-id %s --deploy-only` in a row; 127.0.0.1, %d CPUs, %s\n",
		stackExample, stackStore, o.rate, stackHost, o.slowEvery, o.slow.Milliseconds(), o.deploys, stackStore, runtime.NumCPU(), runtime.Version())
	s, err := setupStack(ctx, o)
	var res stackResult
	if err == nil {
		res, err = loadStack(ctx, o, s)
	}
	stopped, left := s.cleanUp(o.keep)
	if err != nil {
		if s != nil && o.keep {
			fmt.Printf("kept %s\n", s.dir)
		}
		return fmt.Errorf("full stack: %w", err)
	}
	printStack(o, res, ref)
	fmt.Printf("\nclean-up: SIGINT to slipway serve, then stopped %d process(es) left under the temporary directory", len(stopped))
	if len(stopped) > 0 {
		var ws []string
		for _, p := range stopped {
			ws = append(ws, fmt.Sprintf("%d (%s)", p.pid, filepath.Base(strings.Fields(p.why)[1])))
		}
		fmt.Printf(": %s", strings.Join(ws, ", "))
	}
	if len(left) > 0 {
		fmt.Printf("; STILL RUNNING: %v", left)
	} else {
		fmt.Printf("; none left")
	}
	if o.keep {
		fmt.Printf("; kept %s", s.dir)
	}
	fmt.Printf("\nfull-stack section took %s (build, first deploy, load, clean-up)\n", time.Since(began).Round(100*time.Millisecond))
	if len(left) > 0 {
		return fmt.Errorf("%d process(es) could not be stopped", len(left))
	}
	return nil
}

// loadStack runs the load and the deploy-only runs.
func loadStack(ctx context.Context, o options, s *stackRun) (stackResult, error) {
	var res stackResult
	client := proxybench.Client(30 * time.Second)
	url := "http://" + s.addr
	slowPath := fmt.Sprintf("/slow?ms=%d", o.slow.Milliseconds())

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	deploysDone := make(chan struct{})
	go stopLoadAfter(loadCtx, o, deploysDone, stopLoad)

	// The deploy-only runs, one after the other: the k-th no earlier than
	// k/(deploys+1) of the duration, and never before the previous returned.
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(deploysDone)
		begin := time.Now()
		every := o.duration / time.Duration(o.deploys+1)
		for k := 1; k <= o.deploys; k++ {
			select {
			case <-time.After(time.Until(begin.Add(time.Duration(k) * every))):
			case <-loadCtx.Done():
				return
			}
			d := stackDeploy{start: time.Now(), release: -1}
			out, code, err := s.slipway(ctx, 5*time.Minute, "deploy", "--store-id", stackStore, "--deploy-only")
			d.took, d.exitCode, d.out = time.Since(d.start), code, out
			if err != nil {
				d.exitCode, d.out = -1, out+"\n"+err.Error()
			}
			if m := relNumber.FindStringSubmatch(releaseOf(out)); m != nil {
				d.release, _ = strconv.Atoi(m[1])
			}
			mu.Lock()
			res.deploys = append(res.deploys, d)
			mu.Unlock()
		}
	}()

	maxN := o.rate * int(3*o.duration/time.Second)
	samples := make([]sample, maxN)
	t0 := time.Now()
	n := proxybench.OpenLoop(loadCtx, o.rate, 3*o.duration, func(i int, intended time.Time) {
		x := sample{intended: intended, slow: i%o.slowEvery == 0, release: -1}
		path := "/"
		if x.slow {
			path = slowPath
		}
		status, body, err := getHost(client, url+path)
		x.end, x.status, x.err = time.Now(), status, err
		if err == nil && !x.slow {
			if m := relInBody.FindSubmatch(body); m != nil {
				if r := relNumber.FindSubmatch(m[1]); r != nil {
					x.release, _ = strconv.Atoi(string(r[1]))
				}
			}
		}
		samples[i] = x
	})
	res.loadTime = time.Since(t0)
	stopLoad()
	wg.Wait()
	res.samples = samples[:n]
	// Let serve log the last drain before reading the log.
	time.Sleep(200 * time.Millisecond)
	s.log.mu.Lock()
	res.switches = slices.Clone(s.log.switches)
	res.releases = s.log.releases
	res.gateAt = s.log.gateAt
	res.problems = slices.Clone(s.log.problems)
	s.log.mu.Unlock()
	slices.SortFunc(res.switches, func(a, b switchover) int { return a.at.Compare(b.at) })
	return res, ctx.Err()
}

// stackSummary is one row of the full-stack table.
type stackSummary struct {
	requests, connErr, status5xx, otherStatus, unknown, stale, early int
	p50fast, p99fast, p50slow, p99slow                               time.Duration
	releases, attributable, slow                                     int
	errExamples                                                      []string
}

func (s stackSummary) failed() int { return s.connErr + s.status5xx + s.otherStatus }

// summariseStack counts a run's samples. attributable says whether a 200
// can name its release (full stack: /slow answers name none), known whether
// the release it names is one the system ran. tolerance is how much later
// than a logged swap time the swap may really have happened; early says
// whether the release answered before it can have taken over.
func summariseStack(samples []sample, switches []switchover, attributable, known, early func(sample) bool, tolerance time.Duration) stackSummary {
	var s stackSummary
	var fast, slow []time.Duration
	seen := map[int]bool{}
	examples := map[string]bool{}
	for _, x := range samples {
		s.requests++
		if x.slow {
			s.slow++
		}
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
		lat := x.end.Sub(x.intended)
		if x.slow {
			slow = append(slow, lat)
		} else {
			fast = append(fast, lat)
		}
		if !attributable(x) {
			continue
		}
		s.attributable++
		if !known(x) {
			s.unknown++
			continue
		}
		seen[x.release] = true
		// Served by a release that had been replaced before the request was due.
		if x.release < activeAt(switches, x.intended.Add(-tolerance)) {
			s.stale++
		}
		if early(x) {
			s.early++
		}
	}
	s.releases = len(seen)
	s.p50fast, s.p99fast = proxybench.Summarise(fast).P50, proxybench.Summarise(fast).P99
	s.p50slow, s.p99slow = proxybench.Summarise(slow).P50, proxybench.Summarise(slow).P99
	for e := range examples {
		s.errExamples = append(s.errExamples, e)
	}
	slices.Sort(s.errExamples)
	return s
}

func printStack(o options, res stackResult, ref []report) {
	type row struct {
		name string
		s    stackSummary
	}
	full := summariseStack(res.samples, res.switches,
		func(x sample) bool { return !x.slow },
		func(x sample) bool { return x.release >= 0 && res.releases[x.release] },
		// Served by a release before the router even began its swap
		// (logged before the swap), or by one it never swapped to.
		func(x sample) bool { g, ok := res.gateAt[x.release]; return !ok || g.After(x.end) },
		time.Millisecond)
	rows := []row{{"slipway full stack", full}}
	for _, r := range ref {
		s := summariseStack(r.samples, r.switches,
			func(sample) bool { return true },
			func(x sample) bool { return !x.mixed && x.release >= 0 },
			func(x sample) bool { return x.release > activeAt(r.switches, x.end.Add(5*time.Millisecond)) },
			0)
		rows = append(rows, row{"ref: " + r.system + " router-level", s})
	}
	fmt.Println()
	fmt.Printf("%-28s %8s %7s %9s %6s %7s %6s %6s %9s %9s %10s %10s %9s\n",
		"system", "requests", "failed", "conn-err", "5xx", "unknown", "stale", "early", "p50 fast", "p99 fast", "p50 /slow", "p99 /slow", "releases")
	for _, r := range rows {
		s := r.s
		fmt.Printf("%-28s %8d %7d %9d %6d %7d %6d %6d %9s %9s %10s %10s %9d\n",
			r.name, s.requests, s.failed(), s.connErr, s.status5xx, s.unknown, s.stale, s.early,
			proxybench.Ms(s.p50fast), proxybench.Ms(s.p99fast), proxybench.Ms(s.p50slow), proxybench.Ms(s.p99slow), s.releases)
	}

	var took, toSwap, drain []time.Duration
	ok, cut := 0, 0
	byRel := map[int]switchover{}
	for _, sw := range res.switches {
		byRel[sw.release] = sw
		cut += sw.cut
	}
	for _, d := range res.deploys {
		took = append(took, d.took)
		if d.exitCode == 0 && d.release >= 0 {
			ok++
		}
		if sw, found := byRel[d.release]; found {
			toSwap = append(toSwap, sw.at.Sub(d.start))
			drain = append(drain, sw.took)
		}
	}
	fmt.Printf("\nslipway full stack: %d/%d deploy-only runs succeeded in %s of load; CLI wall time median %s, max %s; CLI start to swap median %s; drain median %s, max %s; requests cut at drain deadline %d\n",
		ok, o.deploys, res.loadTime.Round(100*time.Millisecond),
		med(took).Round(time.Millisecond), slices.Max(append(took, 0)).Round(time.Millisecond),
		med(toSwap).Round(time.Millisecond), med(drain).Round(time.Millisecond), slices.Max(append(drain, 0)).Round(time.Millisecond), cut)
	fmt.Printf("  %d fast requests attributed to a release by the page's id=\"release\"; the %d /slow answers ({\"sleptMs\":N}) name none, so they count for failures and latency only\n",
		full.attributable, full.slow)
	if len(full.errExamples) > 0 {
		fmt.Printf("  failures seen: %s\n", strings.Join(full.errExamples, "; "))
		printFailures(res)
	}
	for _, d := range res.deploys {
		if d.exitCode != 0 || d.release < 0 {
			fmt.Printf("  deploy-only run at +%s failed (exit %d):\n", d.start.Sub(res.samples[0].intended).Round(time.Millisecond), d.exitCode)
			for _, l := range lastLines(d.out, 12) {
				fmt.Printf("    %s\n", l)
			}
		}
	}
	if len(res.problems) > 0 {
		fmt.Printf("  serve logged %d warning/error line(s), e.g.:\n", len(res.problems))
		for _, p := range res.problems[:min(len(res.problems), 8)] {
			fmt.Printf("    %s\n", p)
		}
	}
	fmt.Println("\nfailed = connection errors + 5xx + other non-200. Only 200 pages from / are attributed (/slow answers name no release):")
	fmt.Println("unknown = the page names no release the server created (router-level rows: body and X-Release disagree);")
	fmt.Println("stale = served by a release already replaced when the request was due (full stack: replaced = serve's `swapped`")
	fmt.Println("log line for the storefront, ms resolution, + 1 ms); early = served by a release before it can have taken over")
	fmt.Println("(full stack: the answer came before serve logged the router's gate for that release, which precedes its swap).")
	fmt.Println("A response whose release was not live at some point of [due, answered] is stale or early. Latency is from the")
	fmt.Println("intended send time (open loop).")
	verdict := "PASS"
	if full.failed() != 0 || full.unknown != 0 || full.stale != 0 || full.early != 0 {
		verdict = "MISS"
	}
	fmt.Printf("goal: slipway full stack 0 failed, 0 unknown, 0 stale, 0 early: %s\n", verdict)
}

// printFailures lists the first failed requests with where they fell
// relative to the swaps, to tell a cutover problem from a load problem.
func printFailures(res stackResult) {
	if len(res.samples) == 0 {
		return
	}
	t0 := res.samples[0].intended
	shown := 0
	for _, x := range res.samples {
		if x.err == nil && x.status == 200 {
			continue
		}
		if shown == 12 {
			fmt.Println("    ...")
			break
		}
		shown++
		what := fmt.Sprintf("status %d", x.status)
		if x.err != nil {
			what = x.err.Error()
		}
		path := "/"
		if x.slow {
			path = "/slow"
		}
		near := "no swap"
		best := time.Duration(1<<62 - 1)
		for _, sw := range res.switches {
			if d := x.intended.Sub(sw.at); d.Abs() < best.Abs() {
				best = d
				near = fmt.Sprintf("%+dms from the swap to %s-v%d", d.Milliseconds(), stackStore, sw.release)
			}
		}
		fmt.Printf("    %s due +%s, answered after %s (%s): %s\n", path, x.intended.Sub(t0).Round(time.Millisecond),
			x.end.Sub(x.intended).Round(time.Millisecond), near, what)
	}
}

func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}
