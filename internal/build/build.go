// Package build runs each composed app's build in its .out directory — a
// .slipway/build.sh callback, the configured command, or the package.json build
// script — and collects the production files into .deploy.
package build

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CallbackFile is the build callback, relative to the composed app.
const CallbackFile = ".slipway/build.sh"

// ArtifaktCallbackFile is where Artifakt users keep the build callback; it
// runs when the app has no CallbackFile (Slipway's own wins when both exist).
const ArtifaktCallbackFile = ".artifakt/build.sh"

// TailLines is how many lines of a failing build are shown without --verbose.
const TailLines = 50

// Step is one command of a build, run in the app directory.
type Step struct {
	// Name says what the step is, e.g. "npm ci" or "build.sh".
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	// Env is added to the build env for this step only.
	Env map[string]string `json:"env,omitempty"`
	// NoProductionEnv runs the step without NODE_ENV=production (dependency
	// installs need devDependencies to build).
	NoProductionEnv bool `json:"-"`
	// Install marks the dependency install, which a Cache may skip.
	Install bool `json:"-"`
	// Kind is "install" (dependencies) or "build".
	Kind string `json:"kind,omitempty"`
}

// Plan returns the steps that build the app in dir (see Detect). No steps
// means nothing to build.
func Plan(dir, command string) ([]Step, error) {
	d, err := Detect(dir, command)
	if err != nil {
		return nil, err
	}
	return d.Steps, nil
}

// packageManager picks npm, yarn or pnpm from the lockfile, and the command that
// installs exactly what the lockfile says (nil without a lockfile).
func packageManager(dir string) (pm, lockfile string, install []string) {
	switch {
	case has(dir, "pnpm-lock.yaml"):
		return "pnpm", "pnpm-lock.yaml", []string{"pnpm", "install", "--frozen-lockfile"}
	case has(dir, "yarn.lock"):
		return "yarn", "yarn.lock", []string{"yarn", "install", "--frozen-lockfile"}
	case has(dir, "package-lock.json"):
		return "npm", "package-lock.json", []string{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}
	case has(dir, "npm-shrinkwrap.json"):
		return "npm", "npm-shrinkwrap.json", []string{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}
	}
	return "npm", "", nil
}

// Task is one app of one store to build.
type Task struct {
	Store string
	App   string
	// Dir is the composed app directory, .out/<store>/<app>.
	Dir string
	// Command is the app's configured build command, "" for the default.
	Command string
	// Env is the store's and app's build env (never secrets).
	Env map[string]string
	// Image, when set, runs the steps in containers of this image
	// (Runner.Containers), with only Env and Slipway's variables: none of
	// the host's environment.
	Image string
}

// Label is "store/app", the prefix of the task's output lines.
func (t Task) Label() string { return t.Store + "/" + t.App }

// Result is the outcome of one task.
type Result struct {
	Task  Task
	Steps []string
	// StepTimes are the steps' durations, in Steps' order.
	StepTimes []time.Duration
	Duration  time.Duration
	Err       error
	// Tail holds the last TailLines lines of output (all of it when shorter).
	Tail []string
}

// Runner builds tasks in parallel.
type Runner struct {
	// Jobs is how many tasks run at once; default 1.
	Jobs int
	// Verbose streams every line; otherwise only failing builds' tails are printed.
	Verbose bool
	// Out receives "[store/app] line" output; nil discards it.
	Out io.Writer
	// BaseEnv is the environment every build starts from (PATH, HOME, ...); default os.Environ().
	BaseEnv []string
	// Commit is passed as SLIPWAY_COMMIT.
	Commit string
	// Cache keeps dependencies and framework caches between builds; nil keeps nothing.
	Cache *Cache
	// Containers runs the steps of tasks that name an Image.
	Containers *Containers

	outMu sync.Mutex
}

// Run builds every task; a failing task fails only itself. Results are in task order.
func (r *Runner) Run(ctx context.Context, tasks []Task) []Result {
	results := make([]Result, len(tasks))
	sem := make(chan struct{}, max(1, r.Jobs))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = r.runTask(ctx, t)
		}()
	}
	wg.Wait()
	return results
}

func (r *Runner) println(s string) {
	if r.Out == nil {
		return
	}
	r.outMu.Lock()
	fmt.Fprintln(r.Out, s)
	r.outMu.Unlock()
}

func (r *Runner) runTask(ctx context.Context, t Task) (res Result) {
	start := time.Now()
	res.Task = t
	tail := &ring{max: TailLines}
	defer func() {
		res.Duration = time.Since(start)
		res.Tail = tail.lines()
		if res.Err != nil && !r.Verbose {
			for _, l := range res.Tail {
				r.println("[" + t.Label() + "] " + l)
			}
		}
	}()
	steps, err := Plan(t.Dir, t.Command)
	if err != nil {
		res.Err = err
		return res
	}
	if r.Cache != nil {
		r.Cache.restoreFramework(t.Store, t.App, t.Dir)
		defer func() {
			if err := r.Cache.saveFramework(t.Store, t.App, t.Dir); err != nil && res.Err == nil {
				res.Err = fmt.Errorf("%s: %w", t.Label(), err)
			}
		}()
	}
	depsKey := ""
	for _, s := range steps {
		t0 := time.Now()
		if s.Kind == "build" && r.Cache != nil && t.Image == "" {
			if add := r.Cache.nextTraceStepEnv(t.Dir, t.App, depsKey, r.env(t, s)); add != nil {
				s.Env = maps.Clone(s.Env)
				if s.Env == nil {
					s.Env = map[string]string{}
				}
				maps.Copy(s.Env, add)
			}
		}
		name, key, err := r.runCachedStep(ctx, t, s, tail)
		if key != "" {
			depsKey = key
		}
		res.Steps = append(res.Steps, name)
		res.StepTimes = append(res.StepTimes, time.Since(t0))
		if err != nil {
			res.Err = fmt.Errorf("%s: %s: %w", t.Label(), s.Name, err)
			return res
		}
	}
	return res
}

// runCachedStep runs s, or for a dependency install whose key the cache
// holds, links the kept node_modules instead (then runs the app's own
// postinstall script, whose output may live outside node_modules). It
// returns the name of what it did, and the dependency cache key of an
// install ("" for other steps).
func (r *Runner) runCachedStep(ctx context.Context, t Task, s Step, tail *ring) (string, string, error) {
	if r.Cache == nil || !s.Install || t.Image != "" {
		// A container's node_modules belong to its Node.js, not the host's.
		return s.Name, "", r.runStep(ctx, t, s, tail)
	}
	s.Env = maps.Clone(s.Env)
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	maps.Copy(s.Env, r.Cache.pmEnv(r.baseEnv(), t.Dir))
	key, err := r.Cache.depsKey(t.Dir, s, r.env(t, s))
	if err != nil || key == "" {
		return s.Name, "", r.runStep(ctx, t, s, tail)
	}
	l := r.Cache.lockKey(t.App + "/" + key)
	l.Lock()
	defer l.Unlock()
	hit, err := r.Cache.restoreDeps(t.App, key, t.Dir)
	if err != nil {
		return s.Name, "", err
	}
	if hit {
		r.note(t, tail, "node_modules from the build cache ("+key[:12]+"): "+s.Name+" skipped")
		if post := postinstall(t.Dir, s.Argv[0]); post != nil {
			return "node_modules from cache + postinstall", key, r.runStep(ctx, t, *post, tail)
		}
		return "node_modules from cache", key, nil
	}
	if err := r.runStep(ctx, t, s, tail); err != nil {
		return s.Name, "", err
	}
	if err := r.Cache.saveDeps(t.App, key, t.Dir); err != nil {
		return s.Name, "", fmt.Errorf("keeping node_modules in the build cache: %w", err)
	}
	return s.Name, key, nil
}

// postinstall is the step that runs the app's own postinstall script, nil without one.
func postinstall(dir, pm string) *Step {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(data, &pkg) != nil || pkg.Scripts["postinstall"] == "" {
		return nil
	}
	return &Step{Name: pm + " run postinstall", Argv: []string{pm, "run", "postinstall"}, NoProductionEnv: true}
}

// note records a line of Slipway's own in the task's output.
func (r *Runner) note(t Task, tail *ring, line string) {
	tail.add(line)
	if r.Verbose {
		r.println("[" + t.Label() + "] " + line)
	}
}

func (r *Runner) baseEnv() []string {
	if r.BaseEnv == nil {
		return os.Environ()
	}
	return r.BaseEnv
}

func (r *Runner) env(t Task, s Step) []string {
	return stepEnv(r.baseEnv(), t, s, r.Commit)
}

// stepEnv is base, then the task's env, Slipway's variables and the step's.
func stepEnv(base []string, t Task, s Step, commit string) []string {
	env := map[string]string{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	maps.Copy(env, t.Env)
	env["SLIPWAY_STORE_ID"] = t.Store
	env["SLIPWAY_APP"] = t.App
	env["SLIPWAY_COMMIT"] = commit
	if s.NoProductionEnv {
		delete(env, "NODE_ENV")
	} else {
		env["NODE_ENV"] = "production"
	}
	maps.Copy(env, s.Env)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// runStep runs one command in its own process group, so cancelling kills
// everything it started, and streams its output line by line.
func (r *Runner) runStep(ctx context.Context, t Task, s Step, tail *ring) error {
	if t.Image != "" {
		return r.runInContainer(ctx, t, s, tail)
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Dir = t.Dir
	cmd.Env = r.env(t, s)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A build that leaves a background child holding its output must not hang us.
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		return err
	}
	done := r.lines(t, tail, pr)
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait(); pw.Close() }()
	var err error
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-waitErr:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-waitErr
		}
		err = fmt.Errorf("cancelled: %w", ctx.Err())
	}
	// Whatever the step left running in its group goes with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return err
}

// lines feeds what pr reads to the task's tail (and, verbose, the output)
// line by line; the channel closes when pr ends.
func (r *Runner) lines(t Task, tail *ring, pr io.Reader) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			if r.Verbose {
				r.println("[" + t.Label() + "] " + line)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	return done
}

// runInContainer runs the step in a container of the task's image, with
// the task's env but none of the host's (its PATH is not the image's).
func (r *Runner) runInContainer(ctx context.Context, t Task, s Step, tail *ring) error {
	if r.Containers == nil {
		return fmt.Errorf("the build runs in a container of %s, but no Docker engine is connected", t.Image)
	}
	pr, pw := io.Pipe()
	done := r.lines(t, tail, pr)
	err := r.Containers.run(ctx, t, s.Argv, stepEnv(nil, t, s, r.Commit), pw)
	pw.Close()
	<-done
	return err
}

// ring keeps the last max lines.
type ring struct {
	mu  sync.Mutex
	max int
	buf []string
}

func (r *ring) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, s)
	if len(r.buf) > r.max {
		r.buf = r.buf[len(r.buf)-r.max:]
	}
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.buf)
}
