package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/redact"
	"github.com/slipway-dev/slipway/internal/state"
)

// Day-two operations on a deployed store: restart, stop, start, scale,
// remove, run, ps. They act on the store's live release, with the request
// that deployed it (kept in memory: it holds the store's secrets).

// MaxInstances is the most instances an app may run.
const MaxInstances = 32

// MaintenanceMessage is what a stopped store's hosts answer, with 503.
const MaintenanceMessage = "This site is down for maintenance. Please retry later."

// ErrNoLiveRequest means serve does not hold the env of the store's live
// release (it restarted since the deploy, or the store was never deployed).
var ErrNoLiveRequest = errors.New("serve does not know the live release's env (it restarted since the last deploy): run `slipway deploy --deploy-only` once")

// ErrNotDeployed means the store has no live release on this server.
var ErrNotDeployed = errors.New("the store has no live release")

// liveStore is what a store's last successful deploy asked for.
type liveStore struct {
	req     DeployRequest
	release string
	stopped bool
}

type liveStores struct {
	mu sync.Mutex
	m  map[*Deployer]map[string]*liveStore
}

// lives is keyed by Deployer so that Deployer's struct needs no new field.
var lives = liveStores{m: map[*Deployer]map[string]*liveStore{}}

// setLive records the request of a deploy that went live.
func (d *Deployer) setLive(req DeployRequest, release string) {
	lives.mu.Lock()
	defer lives.mu.Unlock()
	if lives.m[d] == nil {
		lives.m[d] = map[string]*liveStore{}
	}
	req.Apps = slices.Clone(req.Apps)
	req.Hooks = Hooks{}
	prev := lives.m[d][req.Store]
	lives.m[d][req.Store] = &liveStore{req: req, release: release}
	if prev == nil || prev.stopped {
		// A deploy brings a stopped store back (see stopped.go).
		if _, err := d.State.Stopped(context.Background(), req.Store); err == nil {
			d.clearStopped(req.Store)
		}
	}
}

func (d *Deployer) live(store string) *liveStore {
	lives.mu.Lock()
	ls := lives.m[d][store]
	lives.mu.Unlock()
	if ls != nil {
		return ls
	}
	// After a serve restart: rebuilt from the instance specs an earlier
	// serve recorded (sealed) for self-healing.
	if ls = d.restoreLive(store); ls == nil {
		if ls = d.restoreStopped(store); ls == nil {
			return nil
		}
	}
	lives.mu.Lock()
	defer lives.mu.Unlock()
	if lives.m[d] == nil {
		lives.m[d] = map[string]*liveStore{}
	}
	if cur := lives.m[d][store]; cur != nil {
		return cur
	}
	lives.m[d][store] = ls
	return ls
}

// restoreLive rebuilds what restart, scale and run need of a store's live
// release from the supervised specs of the instances its routes point at;
// nil unless every routed app of the store has one.
func (d *Deployer) restoreLive(store string) *liveStore {
	svcs := d.storeServices(store)
	if len(svcs) == 0 {
		return nil
	}
	byService := map[string]*supervised{}
	d.mu.Lock()
	for _, r := range d.supervised {
		if r.store != store || byService[r.service] != nil {
			continue
		}
		for _, s := range svcs {
			if s.Name == r.service && slices.ContainsFunc(s.Targets, func(t proxy.TargetStatus) bool { return t.Address == r.inst.Addr }) {
				byService[r.service] = r
			}
		}
	}
	d.mu.Unlock()
	ls := &liveStore{req: DeployRequest{Store: store, Env: map[string]string{}}}
	for _, s := range svcs {
		r := byService[s.Name]
		if r == nil {
			return nil
		}
		spec := r.spec
		env := map[string]string{}
		for k, v := range spec.Env {
			if !strings.HasPrefix(k, "SLIPWAY_") {
				env[k] = v
			}
			if slices.Contains(spec.Secrets, v) && !slices.Contains(ls.req.Secrets, k) {
				ls.req.Secrets = append(ls.req.Secrets, k)
				ls.req.Env[k] = v
			}
		}
		ls.req.Project = spec.Labels[driver.LabelProject]
		ls.req.Commit = spec.Env["SLIPWAY_COMMIT"]
		ls.release = spec.Labels[driver.LabelRelease]
		ls.req.Apps = append(ls.req.Apps, AppDeploy{App: spec.Labels[driver.LabelApp], Image: spec.Image, Port: spec.Port,
			Health: r.health, Hosts: s.Hosts, Instances: len(s.Targets), Env: env})
	}
	return ls
}

func (d *Deployer) dropLive(store string) {
	lives.mu.Lock()
	defer lives.mu.Unlock()
	delete(lives.m[d], store)
}

// applyScale sets each app's instance count to the recorded scale (slipway scale), if any.
func (d *Deployer) applyScale(ctx context.Context, req *DeployRequest) error {
	counts, err := d.State.Scale(ctx, req.Store)
	if err != nil {
		return err
	}
	for i, a := range req.Apps {
		if n, ok := counts[a.App]; ok {
			req.Apps[i].Instances = n
		}
	}
	return nil
}

// opRun is one day-two operation holding the store's deploy lock.
type opRun struct {
	d     *Deployer
	store string
	say   func(format string, args ...any)
	ls    *liveStore
	lock  *state.Lock
}

func (d *Deployer) beginOp(ctx context.Context, store, op string, needLive bool, emit func(Event)) (*opRun, error) {
	o := &opRun{d: d, store: store, say: func(format string, args ...any) {
		e := Event{Time: time.Now(), Store: store, Stage: op, Message: fmt.Sprintf(format, args...)}
		d.logEvent(e)
		if emit != nil {
			emit(e)
		}
	}}
	o.ls = d.live(store)
	if needLive && o.ls == nil {
		if _, err := d.State.Current(ctx, store); errors.Is(err, state.ErrNotFound) {
			return nil, fmt.Errorf("%s %s: %w", op, store, ErrNotDeployed)
		}
		return nil, fmt.Errorf("%s %s: %w", op, store, ErrNoLiveRequest)
	}
	lock, err := d.State.Acquire(ctx, store, state.LockOptions{Wait: true, Commit: op})
	if err != nil {
		return nil, fmt.Errorf("taking the deploy lock of %s: %w", store, err)
	}
	o.lock = lock
	o.ls = d.live(store) // a deploy may have finished while we waited
	if needLive && o.ls == nil {
		lock.Release()
		return nil, fmt.Errorf("%s %s: %w", op, store, ErrNoLiveRequest)
	}
	return o, nil
}

func (o *opRun) end() { o.lock.Release() }

// Restart replaces every instance of the store's live release with new ones,
// gated, swapped in one cutover and drained: no request fails, no hook runs.
func (d *Deployer) Restart(ctx context.Context, store string, emit func(Event)) error {
	o, err := d.beginOp(ctx, store, "restart", true, emit)
	if err != nil {
		return err
	}
	defer o.end()
	return o.replaceAll(context.WithoutCancel(ctx))
}

// Start brings a stopped store's live release back (a running one is restarted).
func (d *Deployer) Start(ctx context.Context, store string, emit func(Event)) error {
	o, err := d.beginOp(ctx, store, "start", true, emit)
	if err != nil {
		return err
	}
	defer o.end()
	if err := o.replaceAll(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	o.ls.stopped = false
	d.clearStopped(store)
	return nil
}

// replaceAll starts new instances of every app, cuts over to them and stops
// every other web instance of the store.
func (o *opRun) replaceAll(ctx context.Context) error {
	req := o.ls.req
	if err := o.d.applyScale(ctx, &req); err != nil {
		return err
	}
	tag := "r" + strconv.FormatInt(time.Now().UnixMilli()%1e8, 36)
	var started []*startedApp
	c := proxy.Cutover{DrainTimeout: req.DrainTimeout}
	for _, a := range req.Apps {
		sa, err := o.d.startApp(ctx, req, a, o.ls.release, max(1, a.Instances), 0, tag)
		started = append(started, sa)
		if err != nil {
			o.d.stopAll(started)
			return err
		}
		o.say("started %d instance(s) of %s", len(sa.instances), a.App)
		c.Services = append(c.Services, proxy.DeployRequest{Service: service(req.Store, a.App), Hosts: a.Hosts, Targets: addrs(sa.instances), Health: a.Health})
	}
	c.Swapped = func() { o.say("swapped: new instances serve") }
	if _, err := o.d.Router.DeployAll(ctx, c); err != nil {
		o.d.stopAll(started)
		return err
	}
	var keep []string
	for _, sa := range started {
		o.d.remember(sa, req, sa.specs)
		for _, in := range sa.instances {
			keep = append(keep, in.ID)
		}
	}
	n := o.d.stopStoreExcept(ctx, req.Project, req.Store, keep)
	o.say("stopped %d old instance(s)", n)
	return nil
}

// startApp starts n instances of app a, numbered from first+1.
func (d *Deployer) startApp(ctx context.Context, req DeployRequest, a AppDeploy, release string, n, first int, tag string) (*startedApp, error) {
	sa := &startedApp{app: a}
	for i := first; i < first+n; i++ {
		spec := driver.Spec{
			Image: a.Image, Name: fmt.Sprintf("%s-%s-%s-%s-%s%d", req.Project, req.Store, a.App, release, tag, i+1),
			Env: instanceEnv(req, a, release), Port: a.Port, DataKey: dataKey(req),
			Labels:  driver.ManagedLabels(req.Project, req.Store, a.App, release, "web"),
			Secrets: reqSecretValues(req),
		}
		inst, err := d.Driver.Start(ctx, spec)
		if err != nil {
			return sa, fmt.Errorf("starting %s: %w", a.App, err)
		}
		sa.instances = append(sa.instances, inst)
		sa.specs = append(sa.specs, spec)
	}
	return sa, nil
}

// stopStoreExcept stops, in parallel, the store's web instances whose id is not in keep.
func (d *Deployer) stopStoreExcept(ctx context.Context, project, store string, keep []string) int {
	match := map[string]string{driver.LabelStore: store, driver.LabelRole: "web"}
	if project != "" {
		match[driver.LabelProject] = project
	}
	insts, err := d.Driver.List(ctx, match)
	if err != nil {
		return 0
	}
	var ids []string
	for _, in := range insts {
		if !slices.Contains(keep, in.ID) {
			ids = append(ids, in.ID)
		}
	}
	d.stopIDs(ctx, ids)
	return len(ids)
}

func (d *Deployer) stopIDs(ctx context.Context, ids []string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Driver.Stop(ctx, id)
		}()
	}
	wg.Wait()
	d.forget(ids...)
}

// storeServices are the router's services of a store.
func (d *Deployer) storeServices(store string) []proxy.ServiceStatus {
	var out []proxy.ServiceStatus
	for _, s := range d.Router.Services() {
		if strings.HasPrefix(s.Name, store+"/") {
			out = append(out, s)
		}
	}
	return out
}

// Stop takes the store offline: its hosts answer 503 with Retry-After and a
// maintenance page, in-flight requests finish, then its instances stop.
// The live release stays recorded; Start brings it back.
func (d *Deployer) Stop(ctx context.Context, store string, emit func(Event)) error {
	o, err := d.beginOp(ctx, store, "stop", false, emit)
	if err != nil {
		return err
	}
	defer o.end()
	ctx = context.WithoutCancel(ctx)
	svcs := d.storeServices(store)
	if len(svcs) == 0 {
		return fmt.Errorf("stop %s: %w", store, ErrNotDeployed)
	}
	c := proxy.Cutover{}
	if o.ls != nil {
		c.DrainTimeout = o.ls.req.DrainTimeout
	}
	for _, s := range svcs {
		c.Services = append(c.Services, proxy.DeployRequest{Service: s.Name, Health: s.Health, Maintenance: MaintenanceMessage})
	}
	if o.ls != nil {
		if err := d.recordStopped(ctx, o.ls); err != nil {
			return fmt.Errorf("stop %s: %w", store, err)
		}
	}
	if _, err := d.Router.DeployAll(ctx, c); err != nil {
		if o.ls != nil && !o.ls.stopped {
			d.clearStopped(store)
		}
		return err
	}
	o.say("offline: the store's hosts answer 503 (maintenance)")
	n := d.stopStoreExcept(ctx, "", store, nil)
	o.say("stopped %d instance(s)", n)
	if o.ls != nil {
		o.ls.stopped = true
	}
	return nil
}

// Remove stops the store and removes its routes (its hosts answer 404); its
// release history stays.
func (d *Deployer) Remove(ctx context.Context, store string, emit func(Event)) error {
	o, err := d.beginOp(ctx, store, "remove", false, emit)
	if err != nil {
		return err
	}
	defer o.end()
	ctx = context.WithoutCancel(ctx)
	var names []string
	for _, s := range d.storeServices(store) {
		names = append(names, s.Name)
	}
	if len(names) > 0 {
		if _, err := d.Router.DeployAll(ctx, proxy.Cutover{Remove: names}); err != nil {
			return err
		}
		o.say("routes removed: %s", strings.Join(names, ", "))
	}
	if d.Edge != nil {
		if err := d.Edge.Forget(store); err != nil {
			o.say("warning: %v", err)
		}
	}
	n := d.stopStoreExcept(ctx, "", store, nil)
	o.say("stopped %d instance(s); the release history is kept", n)
	d.dropLive(store)
	d.clearStopped(store)
	if len(names) == 0 && n == 0 {
		return fmt.Errorf("remove %s: %w", store, ErrNotDeployed)
	}
	return nil
}

// Scale sets and records the instance counts of apps of a store, then brings
// the running release to them: new instances are health-gated before they
// get traffic, surplus ones are drained and stopped.
func (d *Deployer) Scale(ctx context.Context, store string, counts map[string]int, emit func(Event)) error {
	for app, n := range counts {
		if n < 1 || n > MaxInstances {
			return fmt.Errorf("scale %s: %s=%d: instances must be 1 to %d", store, app, n, MaxInstances)
		}
	}
	if ls := d.live(store); ls != nil {
		for app := range counts {
			if !slices.ContainsFunc(ls.req.Apps, func(a AppDeploy) bool { return a.App == app }) {
				return fmt.Errorf("scale %s: no app %q in the live release (apps: %s)", store, app, strings.Join(appNames(ls.req), ", "))
			}
		}
	}
	o, err := d.beginOp(ctx, store, "scale", false, emit)
	if err != nil {
		return err
	}
	defer o.end()
	if err := d.State.SetScale(ctx, store, counts); err != nil {
		return err
	}
	if o.ls == nil || o.ls.stopped {
		o.say("recorded; applies when the store next deploys or starts")
		return nil
	}
	return o.scale(context.WithoutCancel(ctx), counts)
}

func appNames(req DeployRequest) []string {
	var out []string
	for _, a := range req.Apps {
		out = append(out, a.App)
	}
	return out
}

func (o *opRun) scale(ctx context.Context, counts map[string]int) error {
	req := o.ls.req
	routed := map[string][]string{}
	for _, s := range o.d.storeServices(req.Store) {
		for _, t := range s.Targets {
			routed[s.Name] = append(routed[s.Name], t.Address)
		}
	}
	insts, err := o.d.Driver.List(ctx, map[string]string{driver.LabelStore: req.Store, driver.LabelRole: "web"})
	if err != nil {
		return err
	}
	byAddr := map[string]driver.Instance{}
	for _, in := range insts {
		byAddr[in.Addr] = in
	}
	tag := "s" + strconv.FormatInt(time.Now().UnixMilli()%1e8, 36)
	var started []*startedApp
	var surplus []string
	c := proxy.Cutover{DrainTimeout: req.DrainTimeout}
	for _, app := range slices.Sorted(maps.Keys(counts)) {
		want := counts[app]
		i := slices.IndexFunc(req.Apps, func(a AppDeploy) bool { return a.App == app })
		a := req.Apps[i]
		svc := service(req.Store, app)
		have := routed[svc]
		targets := slices.Clone(have)
		switch {
		case want > len(have):
			sa, err := o.d.startApp(ctx, req, a, o.ls.release, want-len(have), len(have), tag)
			started = append(started, sa)
			if err != nil {
				o.d.stopAll(started)
				return err
			}
			targets = append(targets, addrs(sa.instances)...)
		case want < len(have):
			targets = have[:want]
			for _, addr := range have[want:] {
				if in, ok := byAddr[addr]; ok {
					surplus = append(surplus, in.ID)
				}
			}
		}
		o.ls.req.Apps[i].Instances = want
		c.Services = append(c.Services, proxy.DeployRequest{Service: svc, Hosts: a.Hosts, Targets: targets, Health: a.Health})
		o.say("%s: %d -> %d instance(s)", app, len(have), want)
	}
	if _, err := o.d.Router.DeployAll(ctx, c); err != nil {
		o.d.stopAll(started)
		return err
	}
	for _, sa := range started {
		o.d.remember(sa, req, sa.specs)
	}
	o.d.stopIDs(ctx, surplus)
	return nil
}

// RunSpec is a one-off command in a store's live release (slipway run).
type RunSpec struct {
	Store string
	// App whose image runs it; default the store's first app.
	App string
	// Cmd is the argv; the image's entrypoint when empty.
	Cmd            []string
	Stdout, Stderr io.Writer
}

// Run runs a one-off command in the live release's image of an app, with the
// store's env and /data, and returns its exit code. Secret values are redacted
// from its output.
func (d *Deployer) Run(ctx context.Context, rs RunSpec) (int, error) {
	ls := d.live(rs.Store)
	if ls == nil {
		if _, err := d.State.Current(ctx, rs.Store); errors.Is(err, state.ErrNotFound) {
			return -1, fmt.Errorf("run in %s: %w", rs.Store, ErrNotDeployed)
		}
		return -1, fmt.Errorf("run in %s: %w", rs.Store, ErrNoLiveRequest)
	}
	req := ls.req
	if rs.App != "" && !slices.ContainsFunc(req.Apps, func(a AppDeploy) bool { return a.App == rs.App }) {
		return -1, fmt.Errorf("run in %s: no app %q (apps: %s)", rs.Store, rs.App, strings.Join(appNames(req), ", "))
	}
	a := appFor(req, rs.App)
	red := redact.New(reqSecretValues(req)...)
	stdout, stderr := red.Writer(orDiscard(rs.Stdout)), red.Writer(orDiscard(rs.Stderr))
	defer stdout.Close()
	defer stderr.Close()
	code, err := d.Driver.Run(ctx, driver.RunSpec{
		Image: a.Image, Name: fmt.Sprintf("%s-%s-run-%d", req.Project, req.Store, time.Now().UnixMilli()%1e8),
		Cmd: rs.Cmd, Env: instanceEnv(req, a, ls.release), DataKey: dataKey(req),
		Labels: driver.ManagedLabels(req.Project, req.Store, a.App, ls.release, "run"), Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		return code, red.Error(err)
	}
	return code, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// InstanceStatus is one line of `slipway ps`.
type InstanceStatus struct {
	Store    string    `json:"store"`
	App      string    `json:"app"`
	Release  string    `json:"release"`
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Address  string    `json:"address"`
	State    string    `json:"state"` // running, exited; "serving" when the router sends it traffic
	Restarts int       `json:"restarts"`
	Started  time.Time `json:"started,omitzero"`
	// MemoryBytes is the resident memory, 0 when the runtime cannot say.
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
}

// PS lists the web instances of a store (every store when empty).
func (d *Deployer) PS(ctx context.Context, store string) ([]InstanceStatus, error) {
	match := map[string]string{driver.LabelManaged: "true", driver.LabelRole: "web"}
	if store != "" {
		match[driver.LabelStore] = store
	}
	insts, err := d.Driver.List(ctx, match)
	if err != nil {
		return nil, err
	}
	routed := map[string]bool{}
	for _, s := range d.Router.Services() {
		for _, t := range s.Targets {
			routed[t.Address] = true
		}
	}
	stats, _ := d.Driver.(driver.StatsReader)
	out := []InstanceStatus{}
	for _, in := range insts {
		st := InstanceStatus{Store: in.Labels[driver.LabelStore], App: in.Labels[driver.LabelApp], Release: in.Labels[driver.LabelRelease],
			ID: in.ID, Name: in.Name, Address: in.Addr, State: in.State, Started: in.Started}
		if st.State == "running" && routed[in.Addr] {
			st.State = "serving"
		}
		d.mu.Lock()
		if r := d.supervised[in.ID]; r != nil {
			st.Restarts = r.restarts
		}
		d.mu.Unlock()
		if stats != nil && in.State == "running" {
			if s, err := stats.Stats(ctx, in.ID); err == nil {
				st.MemoryBytes = s.MemoryBytes
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		return strings.Compare(a.Store+"/"+a.App+"/"+a.Name, b.Store+"/"+b.App+"/"+b.Name)
	})
	return out, nil
}

// Prune removes runtime images that none of each store's last KeepReleases releases uses.
func (d *Deployer) Prune(ctx context.Context, emit func(Event)) ([]string, error) {
	p, ok := d.Driver.(driver.Pruner)
	if !ok {
		return nil, fmt.Errorf("the %s runtime does not prune images", d.Driver.Capabilities().Name)
	}
	keep, err := d.State.KeepDigests(ctx, KeepReleases)
	if err != nil {
		return nil, fmt.Errorf("pruning images: %w", err)
	}
	removed, err := p.Prune(ctx, keep)
	if err != nil {
		return removed, fmt.Errorf("pruning images: %w", err)
	}
	sites, err := d.pruneStatic(ctx, keep)
	removed = append(removed, sites...)
	if err != nil {
		return removed, fmt.Errorf("pruning static sites: %w", err)
	}
	if emit != nil {
		emit(Event{Time: time.Now(), Stage: "prune", Message: fmt.Sprintf("removed %d image(s); kept those of the last %d releases of each store", len(removed), KeepReleases)})
	}
	return removed, nil
}
