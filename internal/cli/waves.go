package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
)

// fleetOptions are deploy's rollout flags: a canary, then waves.
type fleetOptions struct {
	canary       string
	wave         int
	maxFailures  int
	rollbackWave bool
	dryRun       bool
}

func (f *fleetOptions) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.canary, "canary", "", "deploy this store first and verify it before any other")
	fs.IntVar(&f.wave, "wave", 0, "deploy the stores in waves of N (default: all at once)")
	fs.IntVar(&f.maxFailures, "max-failures", 0, "stop the rollout once K stores failed (default 1 with --canary or --wave)")
	fs.BoolVar(&f.rollbackWave, "rollback-wave", false, "when the rollout stops, roll the stopping wave's stores back to their previous release")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the rollout plan (stores, why they change, waves, targets) and deploy nothing")
}

// active reports whether the deploy is a staged rollout.
func (f *fleetOptions) active() bool {
	return f.canary != "" || f.wave > 0 || f.maxFailures > 0 || f.rollbackWave || f.dryRun
}

// check validates the flags against the selected stores.
func (f *fleetOptions) check(ids []string) error {
	if f.wave < 0 {
		return usagef("--wave %d: want a positive number of stores", f.wave)
	}
	if f.maxFailures < 0 {
		return usagef("--max-failures %d: want a positive number", f.maxFailures)
	}
	if f.canary != "" && !contains(ids, f.canary) {
		return usagef("--canary %s: not one of the stores being deployed (%s)", f.canary, strings.Join(ids, ", "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wave is one step of a rollout.
type wave struct {
	Name   string   `json:"name"`
	Stores []string `json:"stores"`
	Canary bool     `json:"canary,omitempty"`
}

// planWaves orders the stores: the canary alone, then the rest (sorted) in
// waves of f.wave stores (all at once when 0).
func planWaves(ids []string, f fleetOptions) []wave {
	var rest []string
	for _, id := range ids {
		if id != f.canary {
			rest = append(rest, id)
		}
	}
	sort.Strings(rest)
	var out []wave
	if f.canary != "" {
		out = append(out, wave{Name: "canary", Stores: []string{f.canary}, Canary: true})
	}
	n := f.wave
	if n <= 0 {
		n = len(rest)
	}
	for i := 0; i < len(rest); i += n {
		out = append(out, wave{Stores: rest[i:min(i+n, len(rest))]})
	}
	k := 0
	for i := range out {
		if !out[i].Canary {
			k++
			out[i].Name = fmt.Sprintf("wave %d", k)
		}
	}
	return out
}

// storeChange says why a store changes against its live release.
type storeChange struct {
	Live    string   `json:"live,omitempty"` // live commit, "" without one
	Reasons []string `json:"reasons"`
}

// fleetChanges compares every store's working tree with its live release's
// commit (one compose comparison per distinct commit).
func fleetChanges(ctx context.Context, cfg *config.Config, c *server.Client, ids []string) map[string]storeChange {
	out := map[string]storeChange{}
	byCommit := map[string][]string{}
	for _, id := range ids {
		rs, err := c.Releases(ctx, id)
		if err != nil {
			out[id] = storeChange{Reasons: []string{"unknown (serve: " + err.Error() + ")"}}
			continue
		}
		live := ""
		for _, r := range rs {
			if r.Status == state.StatusLive {
				live = r.Commit
				break
			}
		}
		if live == "" {
			out[id] = storeChange{Reasons: []string{"FIRST_DEPLOY"}}
			continue
		}
		byCommit[live] = append(byCommit[live], id)
	}
	comp := compose.New(cfg)
	for commit, stores := range byCommit {
		changes, err := comp.Changed(ctx, commit)
		found := map[string][]string{}
		for _, ch := range changes {
			for _, r := range ch.Reasons {
				found[ch.Store] = append(found[ch.Store], string(r))
			}
		}
		for _, id := range stores {
			sc := storeChange{Live: commit, Reasons: found[id]}
			switch {
			case err != nil:
				sc.Reasons = []string{"unknown (comparing with " + shortSHA(commit) + ": " + err.Error() + ")"}
			case len(sc.Reasons) == 0:
				sc.Reasons = []string{"UNCHANGED"}
			}
			out[id] = sc
		}
	}
	return out
}

// targetName is where a store deploys: its region's target, or serve's driver.
func targetName(cfg *config.Config, store string) string {
	if n, t, ok := cfg.TargetFor(store); ok {
		return n + " (" + t.Driver + ")"
	}
	return "serve's --driver"
}

// printPlan prints the dry-run plan: one line per store, wave by wave.
func printPlan(w io.Writer, cfg *config.Config, waves []wave, changes map[string]storeChange, f fleetOptions) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tSTORE\tTARGET\tLIVE\tCHANGE")
	for _, wv := range waves {
		for _, s := range wv.Stores {
			ch := changes[s]
			live := "-"
			if ch.Live != "" {
				live = shortSHA(ch.Live)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", wv.Name, s, targetName(cfg, s), live, strings.Join(ch.Reasons, ","))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d store(s) in %d step(s); the rollout stops after %d failed store(s)%s. Nothing was deployed (--dry-run).\n",
		countStores(waves), len(waves), f.limit(), map[bool]string{true: " and rolls the stopping wave back"}[f.rollbackWave])
}

func countStores(waves []wave) int {
	n := 0
	for _, w := range waves {
		n += len(w.Stores)
	}
	return n
}

// limit is the failure count that stops the rollout.
func (f fleetOptions) limit() int {
	if f.maxFailures > 0 {
		return f.maxFailures
	}
	return 1
}

// fleet runs a rollout through deploy and rollback functions (the server's
// API in the CLI; fakes in tests).
type fleet struct {
	out    io.Writer
	log    io.Writer
	deploy func(ctx context.Context, req pipeline.DeployRequest) (*state.Release, error)
	// deployMany, when set, deploys a whole wave as one job on the server.
	// When the server refuses that job as a whole (one store's plan is
	// refused), the wave is deployed store by store through deploy instead,
	// so that the refused store fails alone with its own reason.
	deployMany func(ctx context.Context, stores []string) ([]deployOutcome, error)
	rollback   func(ctx context.Context, store string) (*state.Release, error)
	target     func(store string) string
	// report, when set, is told each step, for the console's rollout view.
	report func(ctx context.Context, r api.Rollout) error
}

// fleetResult sums a rollout up.
type fleetResult struct {
	Deployed, Failed, RolledBack []string
	NotDeployed                  []string
	StoppedAt                    string
}

// run deploys the waves in order, the stores of a wave at once. It stops
// when the canary fails or once the failed stores reach the limit; then the
// later waves are not deployed and, with rollbackWave, the stopping wave's
// stores that went live are returned to their previous release.
func (fl *fleet) run(ctx context.Context, waves []wave, reqs map[string]pipeline.DeployRequest, f fleetOptions) fleetResult {
	var res fleetResult
	var rp *rolloutReport
	if fl.report != nil {
		rp = newRolloutReport(waves, fl.report, fl.log)
		defer func() { rp.end(ctx, res) }()
	}
	for i, wv := range waves {
		rp.startWave(ctx, i)
		outs := fl.deployWave(ctx, wv, reqs)
		rp.endWave(ctx, i, outs)
		fl.printWave(wv, i, len(waves), outs)
		failedHere := 0
		for _, o := range outs {
			if o.err != nil {
				failedHere++
				res.Failed = append(res.Failed, o.store)
			} else {
				res.Deployed = append(res.Deployed, o.store)
			}
		}
		stop := (wv.Canary && failedHere > 0) || len(res.Failed) >= f.limit()
		if !stop {
			continue
		}
		res.StoppedAt = wv.Name
		for _, later := range waves[i+1:] {
			res.NotDeployed = append(res.NotDeployed, later.Stores...)
		}
		why := fmt.Sprintf("%d store(s) failed (--max-failures %d)", len(res.Failed), f.limit())
		if wv.Canary {
			why = "the canary failed"
		}
		fmt.Fprintf(fl.out, "rollout stopped after %s: %s; %d store(s) not deployed\n", wv.Name, why, len(res.NotDeployed))
		if f.rollbackWave {
			res.RolledBack = fl.rollbackWave(ctx, wv, outs)
		}
		break
	}
	return res
}

// deployWave deploys a wave's stores at once.
func (fl *fleet) deployWave(ctx context.Context, wv wave, reqs map[string]pipeline.DeployRequest) []deployOutcome {
	if fl.deployMany != nil {
		outs, err := fl.deployMany(ctx, wv.Stores)
		if err == nil {
			return outs
		}
		fmt.Fprintf(fl.log, "%s as one job was refused (%v): deploying its stores one by one\n", wv.Name, firstLine(err.Error()))
	}
	outs := make([]deployOutcome, len(wv.Stores))
	var wg sync.WaitGroup
	for i, s := range wv.Stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			rel, err := fl.deploy(ctx, reqs[s])
			outs[i] = deployOutcome{store: s, release: rel, err: err, took: time.Since(t0)}
		}()
	}
	wg.Wait()
	return outs
}

// rollbackWave rolls back the wave's stores that have a new live release
// (went live, or went live and failed post-deploy or verify). Stores whose
// deploy failed before the swap still serve their old release.
func (fl *fleet) rollbackWave(ctx context.Context, wv wave, outs []deployOutcome) []string {
	var rolled []string
	tw := tabwriter.NewWriter(fl.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "rolling back %s:\nSTORE\tFROM\tTO\tSTATUS\n", wv.Name)
	for _, o := range outs {
		if o.release == nil || o.release.Status != state.StatusLive {
			fmt.Fprintf(tw, "%s\t-\t-\tunchanged (the deploy never went live)\n", o.store)
			continue
		}
		rel, err := fl.rollback(ctx, o.store)
		switch {
		case err != nil:
			fmt.Fprintf(tw, "%s\t%s\t-\tFAILED: %v\n", o.store, o.release.ID, err)
		default:
			rolled = append(rolled, o.store)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.store, o.release.ID, rel.ID, rel.Status)
		}
	}
	tw.Flush()
	return rolled
}

// printWave prints a wave's status table.
func (fl *fleet) printWave(wv wave, i, n int, outs []deployOutcome) {
	fmt.Fprintf(fl.out, "== %s (%d/%d): %s\n", wv.Name, i+1, n, strings.Join(wv.Stores, ", "))
	tw := tabwriter.NewWriter(fl.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tTARGET\tRELEASE\tSTATUS\tTIME")
	for _, o := range outs {
		rel, status := "-", "failed"
		if o.release != nil {
			rel, status = o.release.ID, string(o.release.Status)
			if o.release.Error != "" && o.release.Status == state.StatusLive {
				status = "live, " + o.release.Stage + " failed"
			}
		}
		if o.err != nil && o.release == nil {
			status = "failed: " + firstLine(o.err.Error())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.store, fl.target(o.store), rel, status, o.took.Round(10*time.Millisecond))
	}
	tw.Flush()
}

// runFleet is deploy's staged rollout against the server: each store of a
// wave is its own job (jr narrowed to the store), so serve plans and checks it.
func runFleet(ctx context.Context, g *globals, cfg *config.Config, c *server.Client, jr api.JobRequest, f fleetOptions, log io.Writer) error {
	byStore := map[string]pipeline.DeployRequest{}
	for _, s := range jr.Stores {
		byStore[s] = pipeline.DeployRequest{Store: s}
	}
	onEvent := func(e pipeline.Event) {
		stage := ""
		if e.Stage != "" {
			stage = e.Stage + ": "
		}
		fmt.Fprintf(log, "[%s] %s%s\n", e.Store, stage, e.Message)
	}
	fl := &fleet{out: g.stdout, log: log, target: func(s string) string { return targetName(cfg, s) },
		deploy: func(ctx context.Context, req pipeline.DeployRequest) (*state.Release, error) {
			return deployOne(ctx, c, storeJob(jr, req.Store), onEvent)
		},
		deployMany: func(ctx context.Context, stores []string) ([]deployOutcome, error) {
			return deployWaveJob(ctx, c, jr, stores, onEvent)
		},
		rollback: func(ctx context.Context, store string) (*state.Release, error) {
			return rollbackStore(ctx, cfg, c, store, log)
		},
		report: c.ReportRollout,
	}
	return finishFleet(g, fl.run(ctx, planWaves(jr.Stores, f), byStore, f))
}

// finishFleet prints a rollout's summary line; a failed store or a stop exits 1.
func finishFleet(g *globals, res fleetResult) error {
	fmt.Fprintf(g.stdout, "rollout: %d live, %d failed, %d not deployed, %d rolled back\n",
		len(res.Deployed), len(res.Failed), len(res.NotDeployed), len(res.RolledBack))
	if len(res.Failed) > 0 || res.StoppedAt != "" {
		return &silentError{ExitFailed}
	}
	return nil
}

// storeJob narrows a job to one store and its images.
func storeJob(jr api.JobRequest, store string) api.JobRequest {
	one := jr
	one.Stores = []string{store}
	one.Images = nil
	for _, im := range jr.Images {
		if im.Store == store {
			one.Images = append(one.Images, im)
		}
	}
	return one
}

// deployOne runs a one-store job and returns its release.
func deployOne(ctx context.Context, c *server.Client, jr api.JobRequest, onEvent func(pipeline.Event)) (*state.Release, error) {
	res, err := c.DeployStores(ctx, jr, onEvent)
	if len(res) == 1 {
		return res[0].Release, res[0].Err
	}
	if err == nil {
		err = fmt.Errorf("no result for %s", strings.Join(jr.Stores, ", "))
	}
	return nil, err
}

// rollbackStore asks serve to return a store to the release before its live one.
func rollbackStore(ctx context.Context, cfg *config.Config, c *server.Client, store string, log io.Writer) (*state.Release, error) {
	jr := api.JobRequest{Kind: api.KindRollback, Stores: []string{store}, Wait: true, Secrets: callerSecrets(cfg, []string{store})}
	return deployOne(ctx, c, jr, func(e pipeline.Event) { fmt.Fprintf(log, "[%s] rollback: %s\n", e.Store, e.Message) })
}

// deployOutcome is one store's result in a wave.
type deployOutcome struct {
	store   string
	release *state.Release
	err     error
	took    time.Duration
}

// dryRunFleet prints the rollout plan without building or deploying.
func dryRunFleet(ctx context.Context, g *globals, cfg *config.Config, ids []string, f fleetOptions) error {
	c, err := g.client(cfg)
	if err != nil {
		return err
	}
	printPlan(g.stdout, cfg, planWaves(ids, f), fleetChanges(ctx, cfg, c, ids), f)
	return nil
}
