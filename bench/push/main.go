// Command push measures deploy-on-push, in one run, against the goals
// (no peer platform runs here: Coolify and Dokploy need their own stacks, so
// each figure is printed beside its goal):
//
//  1. push to live: a signed GitHub webhook for a one-store change of the
//     multistore example, warm caches, until that store's new release answers
//     through the router (goal ≤ 5 s), with where the time went;
//
//  2. webhook answer: 50 concurrent deliveries of one push, then 50 replays
//     (goal p99 ≤ 200 ms; exactly one job queued, every replay "duplicate");
//
//  3. console: the fleet page for 100 stores (goal ≤ 100 ms server time, ≤ 200 KB).
//
//     go run ./bench/push [-rounds 3] [-concurrency 50] [-stores 100]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/console"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/state"
)

var (
	rounds      = flag.Int("rounds", 3, "push-to-live rounds")
	concurrency = flag.Int("concurrency", 50, "concurrent webhook deliveries")
	stores      = flag.Int("stores", 100, "stores in the console's fleet page")
	keep        = flag.Bool("keep", false, "keep the temp dir")
)

const secret = "bench-secret"

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/push:", err)
		os.Exit(1)
	}
}

func run() error {
	tmp, err := os.MkdirTemp("", "bench-push-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(tmp)
	}
	fmt.Printf("bench/push: %d cores, %s/%s, temp %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, tmp)
	st, err := startStack(tmp)
	if err != nil {
		return err
	}
	defer st.stop()
	if err := pushToLive(st); err != nil {
		return fmt.Errorf("push to live: %w", err)
	}
	if err := webhookAnswers(st, "through serve's API listener (auth gate + audit trail)", "a"); err != nil {
		return fmt.Errorf("webhook answers: %w", err)
	}
	// The same handler without serve's gate, to show what the audit trail's writes cost under a burst.
	mux := &plainMux{http.NewServeMux()}
	st.svc.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	gated := st.api
	st.api = hs.URL
	err = webhookAnswers(st, "the push handler alone (no gate, no audit)", "b")
	st.api = gated
	if err != nil {
		return fmt.Errorf("webhook answers: %w", err)
	}
	return fleetPage(tmp)
}

// git runs git in dir with a clean config.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.test", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

type repo struct{ bare, clone string }

// newRepo pushes a copy of files (path → content) to a new bare repository.
func newRepo(dir string, files map[string]string) (*repo, error) {
	r := &repo{bare: filepath.Join(dir, "origin.git"), clone: filepath.Join(dir, "clone")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := git(dir, "init", "--quiet", "--bare", "-b", "main", r.bare); err != nil {
		return nil, err
	}
	if _, err := git(dir, "init", "--quiet", "-b", "main", r.clone); err != nil {
		return nil, err
	}
	if _, err := r.commit("initial", files); err != nil {
		return nil, err
	}
	if _, err := git(r.clone, "remote", "add", "origin", r.bare); err != nil {
		return nil, err
	}
	_, err := git(r.clone, "push", "--quiet", "origin", "main")
	return r, err
}

func (r *repo) commit(msg string, files map[string]string) (string, error) {
	for p, c := range files {
		full := filepath.Join(r.clone, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			return "", err
		}
	}
	if _, err := git(r.clone, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := git(r.clone, "commit", "--quiet", "-m", msg); err != nil {
		return "", err
	}
	if _, err := git(r.clone, "push", "--quiet", "origin", "HEAD:main"); err != nil && !strings.Contains(err.Error(), "No configured push destination") && !strings.Contains(err.Error(), "does not appear") {
		return "", err
	}
	return git(r.clone, "rev-parse", "HEAD")
}

// exampleFiles reads examples/multistore as git tracks it.
func exampleFiles() (map[string]string, error) {
	src := filepath.Join("examples", "multistore")
	list, err := git(src, "ls-files", "-z", ".")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	out := map[string]string{}
	for _, p := range strings.Split(list, "\x00") {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			return nil, err
		}
		out[p] = string(b)
	}
	return out, nil
}

type stack struct {
	srv  *server.Server
	svc  *push.Service
	repo *repo
	api  string
	stop func()
}

func startStack(tmp string) (*stack, error) {
	files, err := exampleFiles()
	if err != nil {
		return nil, err
	}
	r, err := newRepo(filepath.Join(tmp, "git"), files)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "state")
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true, Quiet: true})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := srv.Listen(); err != nil {
		cancel()
		return nil, err
	}
	sf := filepath.Join(tmp, "github-secret")
	os.WriteFile(sf, []byte(secret), 0o600)
	svc, err := push.Open(ctx, push.Options{DataDir: dir, Jobs: 2, Source: source.Options{URL: r.bare, Branch: "main"},
		SecretFiles: map[string]string{source.GitHub: sf}}, push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images})
	if err != nil {
		cancel()
		return nil, err
	}
	svc.Mount(srv)
	svc.Start(ctx)
	serveCtx, stopServe := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(serveCtx); close(done) }()
	return &stack{srv: srv, svc: svc, repo: r, api: srv.APIURL(), stop: func() {
		sctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		svc.Stop(sctx)
		cancel()
		stopServe()
		<-done
	}}, nil
}

var delivery atomic.Int64

// plainMux mounts routes with no gate.
type plainMux struct{ *http.ServeMux }

func (m *plainMux) Handle(p string, _ auth.Scope, h http.Handler) { m.ServeMux.Handle(p, h) }
func (m *plainMux) HandlePublic(p string, h http.Handler)         { m.ServeMux.Handle(p, h) }

// hook sends a signed push delivery (id "" = a new one) and returns the answer and how long it took.
func (s *stack) hook(id, commit string) (int, push.Answer, time.Duration, error) {
	code, a, took, _, err := s.hookTimed(id, commit)
	return code, a, took, err
}

// hookTimed is hook that also returns the answer's Server-Timing parts (name → ms).
func (s *stack) hookTimed(id, commit string) (int, push.Answer, time.Duration, map[string]float64, error) {
	if id == "" {
		id = fmt.Sprintf("bench-%d", delivery.Add(1))
	}
	body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": commit, "before": strings.Repeat("0", 40),
		"head_commit": map[string]any{"id": commit, "message": "bench"}, "pusher": map[string]any{"name": "bench"}})
	req, _ := http.NewRequest("POST", s.api+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", "sha256="+source.Sign([]byte(secret), body))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, push.Answer{}, 0, nil, err
	}
	defer resp.Body.Close()
	var a push.Answer
	err = json.NewDecoder(resp.Body).Decode(&a)
	took := time.Since(start)
	parts := map[string]float64{}
	for _, m := range timingPart.FindAllStringSubmatch(resp.Header.Get("Server-Timing"), -1) {
		var ms float64
		fmt.Sscan(m[2], &ms)
		parts[m[1]] += ms
	}
	return resp.StatusCode, a, took, parts, err
}

var timingPart = regexp.MustCompile(`([a-z]+);dur=([0-9.]+)`)

func (s *stack) wait(a push.Answer) ([]*jobs.Job, error) {
	if a.Status == push.Deciding {
		// Answered before its decisions: its jobs carry the delivery id once decided.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if ps, err := s.svc.Queue.PendingDeliveries(context.Background()); err == nil && len(ps) == 0 {
				break
			}
		}
		js, err := s.svc.Queue.List(context.Background(), jobs.Filter{Delivery: a.Delivery})
		if err != nil {
			return nil, err
		}
		for _, j := range js {
			a.Stores = append(a.Stores, push.StoreDecision{Store: j.Store, Decision: push.Queued, Job: j.ID})
		}
	}
	var out []*jobs.Job
	for _, d := range a.Stores {
		if d.Job == "" {
			continue
		}
		for {
			j, err := s.svc.Queue.Get(context.Background(), d.Job)
			if err != nil {
				return nil, err
			}
			if j.Done() {
				if j.Status != jobs.StatusSucceeded {
					return nil, fmt.Errorf("job %s (%s) %s: %s", j.ID, j.Store, j.Status, j.Error)
				}
				out = append(out, j)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out, nil
}

// answers polls the router as a visitor of host until the body contains marker.
func (s *stack) answers(host, marker string, deadline time.Time) (time.Time, error) {
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+s.srv.HTTPAddr()+"/", nil)
		req.Host = host
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(b, []byte(marker)) {
				return time.Now(), nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("%s never answered with %q", host, marker)
}

const usLocale = "apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json"

func pushToLive(s *stack) error {
	head, _ := git(s.repo.clone, "rev-parse", "HEAD")
	_, a, _, err := s.hook("", head)
	if err != nil {
		return err
	}
	t := time.Now()
	if _, err := s.wait(a); err != nil {
		return err
	}
	fmt.Printf("\n1. push to live (goal ≤ 5s; no peer runs here)\n   first deploy of the 3 stores (cold): %s\n", time.Since(t).Round(time.Millisecond))
	fmt.Printf("   %-6s %8s %8s %8s %8s %8s %8s %8s %8s %9s  %s\n", "round", "answer", "fetch", "compose", "build", "deploy", "gate", "swap", "to-live", "TOTAL", "stores queued")
	for i := 0; i <= *rounds; i++ {
		marker := fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano())
		commit, err := s.repo.commit("us locale "+marker, map[string]string{usLocale: fmt.Sprintf("{\n  \"code\": \"en-US\",\n  \"currency\": \"USD\",\n  \"from\": %q\n}\n", marker)})
		if err != nil {
			return err
		}
		start := time.Now()
		code, a, took, err := s.hook("", commit)
		if err != nil || code != http.StatusAccepted {
			return fmt.Errorf("webhook: %d %v %+v", code, err, a)
		}
		var queued []string
		for _, d := range a.Stores {
			if d.Decision == push.Queued {
				queued = append(queued, d.Store)
			}
		}
		live, err := s.answers("us.localhost", marker, start.Add(60*time.Second))
		if err != nil {
			return err
		}
		js, err := s.wait(a)
		if err != nil {
			return err
		}
		total := live.Sub(start)
		label := fmt.Sprint(i)
		if i == 0 {
			label = "warm-up"
		}
		ms := func(k string) string {
			if len(js) == 0 {
				return "-"
			}
			return fmt.Sprintf("%dms", js[0].Timings[k])
		}
		swap := "-"
		if len(js) > 0 {
			swap = fmt.Sprintf("%dµs", js[0].Timings["swap-us"])
		}
		fmt.Printf("   %-6s %8s %8s %8s %8s %8s %8s %8s %8s %9s  %s  %s\n", label, took.Round(time.Millisecond), ms("fetch"), ms("compose"), ms("build"), ms("deploy"), ms("gate"), swap, ms("to-live"),
			total.Round(time.Millisecond), strings.Join(queued, ","), verdict(total <= 5*time.Second || i == 0))
	}
	fmt.Println("   (build includes compose of the store, the build script, the image and its publish; to-live is the deploy pipeline until the router swapped: start, health gate, swap; gate and swap are the router's own figures)")
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "MISS"
}

func webhookAnswers(s *stack, label, tag string) error {
	n := *concurrency
	eu := "apps/stores/fashion-brand/stores/eu/storefront-unified-nextjs/components/footer.js"
	commit, err := s.repo.commit("eu footer "+tag, map[string]string{eu: "'use strict';\nmodule.exports = { text: 'EU footer " + tag + "', from: 'bench' };\n"})
	if err != nil {
		return err
	}
	before, _ := s.svc.Queue.List(context.Background(), jobs.Filter{Limit: 1000})
	run := func(ids []string) ([]time.Duration, map[string]int, map[string][]float64, error) {
		lat := make([]time.Duration, len(ids))
		statuses := map[string]int{}
		phases := map[string][]float64{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, a, took, parts, err := s.hookTimed(id, commit)
				mu.Lock()
				defer mu.Unlock()
				handler := 0.0
				for k, v := range parts {
					phases[k] = append(phases[k], v)
					handler += v
				}
				// What the handler did not spend: the gate (token check, audit row), HTTP and scheduling.
				phases["outside"] = append(phases["outside"], float64(took.Microseconds())/1000-handler)
				if err != nil || code >= 300 {
					if firstErr == nil {
						firstErr = fmt.Errorf("delivery %s: %d %v %s", id, code, err, a.Message)
					}
					return
				}
				lat[i] = took
				statuses[a.Status]++
			}()
		}
		wg.Wait()
		return lat, statuses, phases, firstErr
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("burst-%s-%d", tag, i)
	}
	lat, st1, ph1, err := run(ids)
	if err != nil {
		return err
	}
	lat2, st2, ph2, err := run(ids)
	if err != nil {
		return err
	}
	// Deliveries answered "deciding" queue their jobs after the answer: count once all are decided.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ps, err := s.svc.Queue.PendingDeliveries(context.Background()); err == nil && len(ps) == 0 {
			break
		}
	}
	after, _ := s.svc.Queue.List(context.Background(), jobs.Filter{Limit: 1000})
	newJobs := map[string]int{}
	for _, j := range after[:len(after)-len(before)] {
		newJobs[j.Store]++
	}
	fmt.Printf("\n2%s. webhook answer at %d concurrent deliveries of one push, %s (goal p99 ≤ 200ms; one job, replays do nothing)\n", tag, n, label)
	fmt.Printf("   machine load average: %s (2 cores shared)\n", loadAvg())
	p := func(l []time.Duration) string {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		q := func(f float64) time.Duration { return l[min(len(l)-1, int(f*float64(len(l))))] }
		return fmt.Sprintf("p50 %s  p99 %s  max %s", q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond))
	}
	p99 := func(l []time.Duration) time.Duration {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return l[min(len(l)-1, int(0.99*float64(len(l))))]
	}
	fmt.Printf("   first deliveries: %s  answers %v  %s\n", p(lat), st1, verdict(p99(lat) <= 200*time.Millisecond))
	fmt.Printf("   %s\n", phaseLine(ph1))
	fmt.Printf("   replays (beside the build the burst queued): %s  answers %v  %s\n", p(lat2), st2, verdict(p99(lat2) <= 200*time.Millisecond && st2["duplicate"] == n))
	fmt.Printf("   %s\n", phaseLine(ph2))
	fmt.Printf("   jobs queued: %v  %s\n", newJobs, verdict(len(newJobs) == 1 && newJobs["eu"] == 1))
	// Let eu's job finish, so that the console figures below are not measured beside a build.
	for _, j := range after[:len(after)-len(before)] {
		s.wait(push.Answer{Stores: []push.StoreDecision{{Job: j.ID}}})
	}
	return nil
}

// loadAvg is the 1, 5 and 15 minute load averages: the figures above mean little without them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// fleetPage measures the console's fleet view for many stores: a repository
// whose config has that many stores, each with a live release on record.
func fleetPage(tmp string) error {
	n := *stores
	files := map[string]string{"apps/storefront-unified-nextjs/package.json": "{}\n"}
	var cfg strings.Builder
	cfg.WriteString("project: fleet\napps:\n  - id: web\n    path: apps/storefront-unified-nextjs\n    framework: next\nstores:\n")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("store-%03d", i)
		fmt.Fprintf(&cfg, "  %s:\n    region: eu-west-%d\n    framework: next\n", id, i%3+1)
		files["apps/stores/"+id+"/web/config/locale.json"] = fmt.Sprintf("{\"store\":%q}\n", id)
	}
	files["slipway.yaml"] = cfg.String()
	r, err := newRepo(filepath.Join(tmp, "fleet-git"), files)
	if err != nil {
		return err
	}
	dir := filepath.Join(tmp, "fleet-state")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, Quiet: true})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	svc, err := push.Open(ctx, push.Options{DataDir: dir, Source: source.Options{URL: r.bare, Branch: "main"}}, push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images})
	if err != nil {
		return err
	}
	head, err := svc.Repo.Fetch(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		rel := &state.Release{Project: "fleet", Store: fmt.Sprintf("store-%03d", i), Commit: head, Kind: state.KindBuildDeploy, Status: state.StatusDeploying,
			Images: map[string]state.Image{"web": {Ref: "slipway.local/fleet/web:" + head, Digest: "sha256:" + strings.Repeat("a", 64)}}}
		if err := srv.State.CreateRelease(ctx, rel); err != nil {
			return err
		}
		if err := srv.State.Promote(ctx, rel); err != nil {
			return err
		}
		if _, err := svc.Queue.Enqueue(ctx, &jobs.Job{Store: rel.Store, Commit: head, Kind: jobs.KindBuildDeploy, Trigger: jobs.TriggerWebhook, Who: "github:bench"}); err != nil {
			return err
		}
	}
	con, err := console.New(console.Options{DataDir: dir, State: srv.State, Router: srv.Router, Driver: srv.Driver, Deployer: srv.Deployer, Push: svc, RouterAddr: srv.HTTPAddr})
	if err != nil {
		return err
	}
	con.Mount(srv)
	const pw = "bench-console-password"
	if err := console.SetPassword(dir, pw); err != nil {
		return err
	}
	serveCtx, stopServe := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(serveCtx); close(done) }()
	defer func() { stopServe(); <-done; svc.Stop(context.Background()) }()

	cookie, err := consoleLogin(srv.APIURL(), pw)
	if err != nil {
		return err
	}
	var server []float64
	var wall []time.Duration
	size := 0
	timing := regexp.MustCompile(`app;dur=([0-9.]+)`)
	for i := 0; i < 21; i++ {
		req, _ := http.NewRequest("GET", srv.APIURL()+"/", nil)
		req.AddCookie(cookie)
		t := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("store-099")) && n >= 100 {
			return fmt.Errorf("fleet page: %d", resp.StatusCode)
		}
		if i == 0 {
			continue // the first view reads the commit messages once
		}
		wall = append(wall, time.Since(t))
		size = len(b)
		var ms float64
		if m := timing.FindStringSubmatch(resp.Header.Get("Server-Timing")); m != nil {
			fmt.Sscan(m[1], &ms)
		}
		server = append(server, ms)
	}
	sort.Float64s(server)
	sort.Slice(wall, func(i, j int) bool { return wall[i] < wall[j] })
	med := server[len(server)/2]
	worst := server[len(server)-1]
	fmt.Printf("\n3. console fleet page, %d stores (goal ≤ 100ms server time, ≤ 200KB)\n", n)
	fmt.Printf("   server time median %.1fms, worst %.1fms (template included: wall median %s)  %s\n", med, worst, wall[len(wall)/2].Round(100*time.Microsecond), verdict(worst <= 100))
	fmt.Printf("   page weight %d bytes (+ %s css/js, cached)  %s\n", size, assetsSize(srv.APIURL(), cookie), verdict(size <= 200<<10))
	return nil
}

func assetsSize(base string, c *http.Cookie) string {
	total := 0
	for _, p := range []string{"/static/console.css", "/static/console.js"} {
		if resp, err := http.Get(base + p); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			total += len(b)
		}
	}
	return fmt.Sprintf("%d bytes", total)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func consoleLogin(base, pw string) (*http.Cookie, error) {
	resp, err := http.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRe.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("no login form")
	}
	var lc *http.Cookie
	for _, c := range resp.Cookies() {
		lc = c
	}
	form := url.Values{"csrf": {string(m[1])}, "password": {pw}, "next": {"/"}}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(lc)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "slipway_console" {
			return c, nil
		}
	}
	return nil, fmt.Errorf("login refused: %d", resp.StatusCode)
}

// phaseLine prints the median and p99 of each part of the answers' time.
func phaseLine(ph map[string][]float64) string {
	var names []string
	for k := range ph {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("where the time went (ms, p50/p99):")
	for _, k := range names {
		l := ph[k]
		sort.Float64s(l)
		fmt.Fprintf(&b, " %s %.1f/%.1f", k, l[len(l)/2], l[min(len(l)-1, int(0.99*float64(len(l))))])
	}
	return b.String()
}
