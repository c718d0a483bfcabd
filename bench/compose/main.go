// Command compose benchmarks `slipway compose --all` and `slipway changed` on a
// generated 20-store monorepo against `cp -a` of the same composed tree.
//
//	go run ./bench/compose [-runs 3] [-work DIR] [-keep] [-seed 1] [-files 2000] [-slipway BIN]
//
// It prints machine facts, a table of median wall-clock times with ratios and
// goals (PASS/MISS), and exits 0 even when a goal is missed; it exits non-zero only
// when the benchmark itself cannot run or a sanity check fails.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	work    string
	keep    bool
	runs    int
	seed    uint64
	files   int
	slipway string
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.work, "work", "", "work directory, created if missing and must be empty (default: a new temp dir under /tmp); removed at the end unless -keep")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (generated repo, .out, slipway binary)")
	flag.IntVar(&o.runs, "runs", 3, "timed runs per measurement; the median is reported")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated monorepo")
	flag.IntVar(&o.files, "files", 2000, "files per base app")
	flag.StringVar(&o.slipway, "slipway", "", "slipway binary to measure (default: build ./cmd/slipway of the current module into the work dir)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./bench/compose [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.runs < 1 {
		flag.Usage()
		return 2
	}
	syscall.Umask(0o022) // the generated modes, and the tools' output, do not depend on the caller's umask
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{o: o}
	err := b.run(ctx)
	if b.work != "" {
		start := time.Now()
		what := b.work
		if o.keep {
			what = b.trash
		}
		if rerr := removeTree(what); rerr != nil {
			fmt.Fprintln(os.Stderr, "bench: cleaning up:", rerr)
		}
		if o.keep {
			fmt.Printf("\nwork directory kept: %s (old trees removed in %s)\n", b.work, round(time.Since(start)))
		} else {
			fmt.Printf("\nwork directory removed in %s\n", round(time.Since(start)))
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "\nbench: FAILED:", err)
		return 1
	}
	return 0
}

type bench struct {
	o         options
	work      string
	workGiven bool
	repo      string // the generated monorepo
	out       string // repo/.out
	dest      string // cp -a destination of the current run
	trash     string // trees moved out of the way during the measurement
	trashed   int
	bin       string // slipway binary
	m         *model
	stores    []string // deployable store ids
}

// storeResult is the part of `slipway compose --json` the bench checks.
type storeResult struct {
	Store   string `json:"store"`
	Written int    `json:"written"`
	Removed int    `json:"removed"`
	Full    bool   `json:"full"`
	Apps    []struct {
		App   string `json:"app"`
		Files int    `json:"files"`
	} `json:"apps"`
}

func (b *bench) run(ctx context.Context) error {
	if err := b.setupWork(); err != nil {
		return err
	}
	b.repo = filepath.Join(b.work, "repo")
	b.out = filepath.Join(b.repo, ".out")
	b.trash = filepath.Join(b.work, "trash")
	if err := os.Mkdir(b.trash, 0o755); err != nil {
		return err
	}
	b.facts(ctx)
	if err := b.buildSlipway(ctx); err != nil {
		return err
	}

	// 1. Generate and commit the monorepo.
	start := time.Now()
	m, err := generate(b.repo, b.o.seed, b.o.files)
	if err != nil {
		return fmt.Errorf("generating the monorepo: %w", err)
	}
	b.m = m
	b.stores = m.deployable()
	if err := b.gitCommit(ctx); err != nil {
		return err
	}
	nTemplates := len(m.Stores) - len(b.stores)
	fmt.Printf("generated    %s in %s: %d apps × %d files, %d stores (%d templates, %d deployable, 2 levels), %d source files, %s (mean %.1f KiB, largest %d KiB); committed\n",
		b.repo, round(time.Since(start)), len(m.Apps), b.o.files, len(m.Stores), nTemplates, len(b.stores), m.NFiles, mib(m.Bytes),
		float64(m.Bytes)/float64(m.NFiles)/1024, m.Largest>>10)
	fmt.Printf("target       step c changes %s (overridden by no store; used by %d stores)\n", m.Target, len(m.usesTarget()))

	// 2. Warm the source once, equally for both tools (the page cache cannot be dropped).
	n, size, err := readAll(filepath.Join(b.repo, "apps"))
	if err != nil {
		return err
	}
	fmt.Printf("warmed       read %d source files, %s\n", n, mib(size))
	per, err := probeCreate(filepath.Join(b.work, "probe"), 2000)
	if err != nil {
		return err
	}
	fmt.Printf("fs probe     creating an empty file takes %.0f µs here now (2,000 files; both tools create 80k: a high value means a busy disk or recently freed inodes, see README)\n", float64(per)/float64(time.Microsecond))

	// 3. Measure. The first full compose is also the reference tree: it is checked
	// against the generator's own composition, and the first cp -a copy against it
	// (both untimed), so the ratios never compare against a wrong tree.
	runs := b.o.runs
	var fullS, cpS, noneS, oneS, changedS []sample
	var notes []string
	fmt.Printf("measuring    %d run(s) each", runs)
	// Side by side, alternating which tool goes first, so a slowly changing machine
	// (other load, background writeback) does not favour one of them.
	for i := range runs {
		for k := range 2 {
			if (i+k)%2 == 0 {
				if i > 0 {
					if err := b.moveAside(b.out); err != nil {
						return err
					}
				}
				d, res, err := b.compose(ctx)
				if err != nil {
					return err
				}
				if err := b.checkFull(res); err != nil {
					return fmt.Errorf("full compose run %d: %w", i+1, err)
				}
				fullS = append(fullS, d)
				if i > 0 {
					continue
				}
				files, nbytes, err := treeSize(b.out, b.stores)
				if err != nil {
					return err
				}
				checked, err := verifyModel(m, b.out)
				if err != nil {
					return err
				}
				notes = append(notes,
					fmt.Sprintf("composed     %d stores, %d files, %s in .out", len(b.stores), files, mib(nbytes)),
					fmt.Sprintf("verified     .out is the expected composition: %d files, same paths, modes and contents as their nearest layer", checked))
			} else {
				d, err := b.cp(ctx)
				if err != nil {
					return err
				}
				cpS = append(cpS, d)
				if i > 0 {
					continue
				}
				if err := b.compareCopy(); err != nil {
					return err
				}
				notes = append(notes, "verified     the cp -a copy is identical to .out (paths, types, modes, contents)")
			}
		}
		fmt.Print(".")
	}
	for i := range runs {
		d, res, err := b.compose(ctx)
		if err != nil {
			return err
		}
		if err := b.checkNone(res); err != nil {
			return fmt.Errorf("no-change re-compose run %d: %w", i+1, err)
		}
		noneS = append(noneS, d)
		fmt.Print(".")
	}
	uses := m.usesTarget()
	for i := range runs {
		if err := appendLine(filepath.Join(b.repo, filepath.FromSlash(m.Target)), fmt.Sprintf("// bench edit %d\n", i+1)); err != nil {
			return err
		}
		d, res, err := b.compose(ctx)
		if err != nil {
			return err
		}
		if err := b.checkOne(res, uses); err != nil {
			return fmt.Errorf("one-file re-compose run %d: %w", i+1, err)
		}
		oneS = append(oneS, d)
		fmt.Print(".")
	}
	if _, err := verifyModel(m, b.out); err != nil {
		return fmt.Errorf("after the one-file re-composes: %w", err)
	}
	changedAvail, changedJSON := b.changedAvailable(ctx)
	var reported []string
	if changedAvail {
		for range runs {
			d, stores, err := b.changed(ctx, changedJSON)
			if err != nil {
				return err
			}
			changedS = append(changedS, d)
			reported = stores
			fmt.Print(".")
		}
	}
	fmt.Println(" done")
	for _, n := range notes {
		fmt.Println(n)
	}
	fmt.Printf("load         %s at the end (the machine may be shared: see the spread of the runs)\n", loadavg())

	// 4. Report.
	fmt.Printf("verified     every full run: %d stores full; every no-change run: 0 written/removed; every one-file run: written=1 in exactly the %d stores using %s; .out re-checked against the expected composition\n",
		len(b.stores), len(uses), m.Target)
	fmt.Printf("\nslipway / cp -a, median of %d run(s); wall clock incl. process start (the goals), and CPU = user + sys; cp -a: one invocation copying the %d store dirs\n\n", runs, len(b.stores))
	tw := newTable("step", "slipway", "cp -a", "ratio", "goal", "result", "CPU slipway", "CPU cp -a", "CPU ratio", "")
	tw.row(ratioRow("full compose, no .out", fullS, cpS, 1.0))
	tw.row(ratioRow("re-compose, nothing changed", noneS, cpS, 0.1))
	tw.row(ratioRow("re-compose, 1 base file changed", oneS, cpS, 0.1))
	if changedAvail {
		med := median(changedS, wallOf)
		res := "PASS"
		if med > time.Second {
			res = "MISS"
		}
		note := fmt.Sprintf("%d store(s) reported", len(reported))
		if want := sortedKeys(uses); !slices.Equal(reported, want) {
			note += fmt.Sprintf(" — WRONG: expected the %d stores using %s", len(want), m.Target)
		} else {
			note += " (as expected)"
		}
		tw.row("changed --since HEAD", secs(med), "—", "—", "≤ 1 s", res, secs(median(changedS, cpuOf)), "—", "—", note)
	} else {
		tw.row("changed --since HEAD", "n/a", "—", "—", "≤ 1 s", "—", "", "", "", "not available in this slipway build")
	}
	tw.flush()
	fmt.Printf("\nall runs, wall (s): full %s | cp -a %s | no change %s | one file %s", secsList(fullS), secsList(cpS), secsList(noneS), secsList(oneS))
	if changedAvail {
		fmt.Printf(" | changed %s", secsList(changedS))
	}
	fmt.Println()
	return nil
}

func (b *bench) setupWork() error {
	if b.o.work == "" {
		dir, err := os.MkdirTemp("/tmp", "slipway-bench-compose-")
		if err != nil {
			return err
		}
		b.work = dir
		return nil
	}
	dir, err := filepath.Abs(b.o.work)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("-work %s is not empty; give a new or empty directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.work, b.workGiven = dir, true
	return nil
}

// facts prints what the numbers depend on.
func (b *bench) facts(ctx context.Context) {
	out := func(name string, args ...string) string {
		o, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return "unknown (" + err.Error() + ")"
		}
		s, _, _ := strings.Cut(strings.TrimSpace(string(o)), "\n")
		return s
	}
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	fmt.Printf("machine      nproc %s, %s, %s RAM, kernel %s; load %s\n", out("nproc"), cpu, mem, out("uname", "-r"), loadavg())
	fmt.Printf("work dir     %s (filesystem %s)\n", b.work, out("stat", "-f", "-c", "%T", b.work))
	fmt.Printf("tools        %s; %s; %s\n", out("go", "version"), out("cp", "--version"), out("git", "--version"))
}

func (b *bench) buildSlipway(ctx context.Context) error {
	if b.o.slipway != "" {
		p, err := filepath.Abs(b.o.slipway)
		if err != nil {
			return err
		}
		b.bin = p
	} else {
		gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("go env GOMOD: %w", err)
		}
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		if _, err := os.Stat(filepath.Join(root, "cmd", "slipway")); err != nil {
			return fmt.Errorf("run from the slipway module, or give -slipway BIN: %w", err)
		}
		b.bin = filepath.Join(b.work, "slipway")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./cmd/slipway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building slipway: %v\n%s", err, out)
		}
		fmt.Printf("built        %s from %s in %s\n", b.bin, root, round(time.Since(start)))
	}
	v, err := exec.CommandContext(ctx, b.bin, "version").Output()
	if err != nil {
		return fmt.Errorf("%s version: %w", b.bin, err)
	}
	fmt.Printf("slipway      %s\n", strings.TrimSpace(string(v)))
	return nil
}

func (b *bench) gitCommit(ctx context.Context) error {
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=slipway bench", "-c", "user.email=bench@slipway.invalid", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "generated monorepo"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = b.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// sample is one timed run: wall clock (process start included) and the CPU time
// (user + system) the command used, which a busy shared machine inflates less.
type sample struct{ wall, cpu time.Duration }

// timed runs one command after a sync (so neither tool pays for the other's dirty
// pages) and returns its times.
func timed(ctx context.Context, dir, name string, args ...string) (sample, []byte, []byte, error) {
	syscall.Sync()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := sample{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		d.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return d, nil, nil, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return d, stdout.Bytes(), stderr.Bytes(), nil
}

func (b *bench) compose(ctx context.Context) (sample, []storeResult, error) {
	d, stdout, stderr, err := timed(ctx, b.work, b.bin, "compose", "--all", "-C", b.repo, "--json")
	if err != nil {
		return d, nil, err
	}
	if s := strings.TrimSpace(string(stderr)); s != "" {
		return d, nil, fmt.Errorf("slipway compose printed warnings or errors (the generated repo should be clean):\n%s", s)
	}
	var res []storeResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		return d, nil, fmt.Errorf("parsing slipway compose --json: %w", err)
	}
	return d, res, nil
}

// cp copies every composed store into a fresh destination with one cp -a.
func (b *bench) cp(ctx context.Context) (sample, error) {
	if b.dest != "" {
		if err := b.moveAside(b.dest); err != nil {
			return sample{}, err
		}
	}
	b.dest = filepath.Join(b.work, "cp")
	if err := os.Mkdir(b.dest, 0o755); err != nil {
		return sample{}, err
	}
	args := []string{"-a"}
	for _, id := range b.stores {
		args = append(args, filepath.Join(b.out, id))
	}
	args = append(args, b.dest+"/")
	d, _, _, err := timed(ctx, b.work, "cp", args...)
	return d, err
}

func (b *bench) compareCopy() error {
	entries, err := os.ReadDir(b.dest)
	if err != nil {
		return err
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, b.stores) {
		return fmt.Errorf("cp -a destination holds %v, want %v", got, b.stores)
	}
	for _, id := range b.stores {
		if _, err := compareTrees(filepath.Join(b.out, id), filepath.Join(b.dest, id)); err != nil {
			return err
		}
	}
	return nil
}

// results indexes compose results by store and checks they cover exactly the deployable stores.
func (b *bench) results(res []storeResult) (map[string]storeResult, error) {
	by := map[string]storeResult{}
	for _, r := range res {
		by[r.Store] = r
	}
	if got := sortedKeys(by); len(res) != len(b.stores) || !slices.Equal(got, b.stores) {
		return nil, fmt.Errorf("compose reported stores %v, want %v", got, b.stores)
	}
	return by, nil
}

func (b *bench) checkFull(res []storeResult) error {
	by, err := b.results(res)
	if err != nil {
		return err
	}
	for _, id := range b.stores {
		r, want := by[id], len(b.m.expected(id))
		files := 0
		for _, a := range r.Apps {
			files += a.Files
		}
		if !r.Full || r.Written != want || r.Removed != 0 || files != want {
			return fmt.Errorf("store %s: full=%v written=%d removed=%d files=%d, want a full compose of %d files", id, r.Full, r.Written, r.Removed, files, want)
		}
	}
	return nil
}

func (b *bench) checkNone(res []storeResult) error {
	by, err := b.results(res)
	if err != nil {
		return err
	}
	for _, id := range b.stores {
		if r := by[id]; r.Full || r.Written != 0 || r.Removed != 0 {
			return fmt.Errorf("store %s: full=%v written=%d removed=%d, want nothing rewritten", id, r.Full, r.Written, r.Removed)
		}
	}
	return nil
}

func (b *bench) checkOne(res []storeResult, uses map[string]bool) error {
	by, err := b.results(res)
	if err != nil {
		return err
	}
	for _, id := range b.stores {
		want := 0
		if uses[id] {
			want = 1
		}
		if r := by[id]; r.Full || r.Written != want || r.Removed != 0 {
			return fmt.Errorf("store %s: full=%v written=%d removed=%d, want written=%d removed=0 after changing %s", id, r.Full, r.Written, r.Removed, want, b.m.Target)
		}
	}
	return nil
}

// changedAvailable reports whether this slipway has `changed --since`, and whether it has --json.
func (b *bench) changedAvailable(ctx context.Context) (bool, bool) {
	out, err := exec.CommandContext(ctx, b.bin, "changed", "--help").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--since")) {
		return false, false
	}
	return true, bytes.Contains(out, []byte("--json"))
}

// changed runs `slipway changed --since HEAD` and returns the stores it lists, sorted.
func (b *bench) changed(ctx context.Context, asJSON bool) (sample, []string, error) {
	args := []string{"changed", "--since", "HEAD", "-C", b.repo}
	if asJSON {
		args = append(args, "--json")
	}
	d, stdout, _, err := timed(ctx, b.work, b.bin, args...)
	if err != nil {
		return d, nil, err
	}
	var stores []string
	if asJSON {
		var list []struct {
			Store string `json:"store"`
		}
		if err := json.Unmarshal(stdout, &list); err != nil {
			return d, nil, fmt.Errorf("parsing slipway changed --json: %w", err)
		}
		for _, s := range list {
			stores = append(stores, s.Store)
		}
	} else {
		for _, l := range strings.Split(string(stdout), "\n") {
			if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(l, " ") {
				stores = append(stores, f[0])
			}
		}
	}
	sort.Strings(stores)
	return d, stores, nil
}

// probeCreate times creating n empty files, per file.
func probeCreate(dir string, n int) (time.Duration, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, err
	}
	syscall.Sync()
	start := time.Now()
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return 0, err
		}
		f.Close()
	}
	return time.Since(start) / time.Duration(n), nil
}

// moveAside takes a tree out of the way without deleting it. Deleting is left to
// the end: on ext4 without a journal, inodes freed in the last 60 s (360 s while
// their inode table block is dirty) are skipped one by one when new files are
// created, which would bill the next timed run for the previous run's cleanup;
// and with the discard mount option a sequential rm -rf waits for a discard per file.
func (b *bench) moveAside(p string) error {
	b.trashed++
	return os.Rename(p, filepath.Join(b.trash, fmt.Sprintf("%d-%s", b.trashed, filepath.Base(p))))
}

// removeTree deletes a tree with many unlinks in flight (much faster than one
// rm -rf where every unlink waits for a discard), falling back to os.RemoveAll.
func removeTree(root string) error {
	var files []string
	var dirs [][]string // by depth
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			depth := strings.Count(p[len(root):], string(filepath.Separator))
			for len(dirs) <= depth {
				dirs = append(dirs, nil)
			}
			dirs[depth] = append(dirs[depth], p)
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err == nil {
		each(files, os.Remove)
		for i := len(dirs) - 1; i >= 0; i-- {
			each(dirs[i], os.Remove)
		}
	}
	return os.RemoveAll(root) // whatever is left, and the errors worth reporting
}

// each calls fn on every item with 32 goroutines (they mostly wait for the disk), ignoring errors.
func each(items []string, fn func(string) error) {
	var wg sync.WaitGroup
	ch := make(chan string)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				fn(p)
			}
		}()
	}
	for _, p := range items {
		ch <- p
	}
	close(ch)
	wg.Wait()
}

// readAll reads every file below dir once.
func readAll(dir string) (int, int64, error) {
	n, size := 0, int64(0)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		n++
		size += int64(len(data))
		return err
	})
	return n, size, err
}

func treeSize(out string, stores []string) (int, int64, error) {
	n, size := 0, int64(0)
	for _, id := range stores {
		err := filepath.WalkDir(filepath.Join(out, id), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n++
			size += fi.Size()
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return n, size, nil
}

func appendLine(p, line string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func wallOf(s sample) time.Duration { return s.wall }
func cpuOf(s sample) time.Duration  { return s.cpu }

func median(ss []sample, of func(sample) time.Duration) time.Duration {
	var s []time.Duration
	for _, x := range ss {
		s = append(s, of(x))
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratioRow(name string, s, cp []sample, goal float64) []string {
	sw, cw := median(s, wallOf), median(cp, wallOf)
	sc, cc := median(s, cpuOf), median(cp, cpuOf)
	ratio := float64(sw) / float64(cw)
	res := "PASS"
	if ratio > goal {
		res = "MISS"
	}
	return []string{name, secs(sw), secs(cw), fmt.Sprintf("%.3f×", ratio), fmt.Sprintf("≤ %.1f×", goal), res,
		secs(sc), secs(cc), fmt.Sprintf("%.3f×", float64(sc)/float64(cc)), ""}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func secsList(ss []sample) string {
	var s []string
	for _, d := range ss {
		s = append(s, fmt.Sprintf("%.3f", d.wall.Seconds()))
	}
	return strings.Join(s, " ")
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// table prints aligned columns; the first is left-aligned, numbers right-aligned.
type table struct{ rows [][]string }

func newTable(head ...string) *table { return &table{rows: [][]string{head}} }

func (t *table) row(cells ...any) {
	var r []string
	for _, c := range cells {
		switch v := c.(type) {
		case string:
			r = append(r, v)
		case []string:
			r = append(r, v...)
		}
	}
	t.rows = append(t.rows, r)
}

func (t *table) flush() {
	width := make([]int, len(t.rows[0]))
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0 || i == 4 || i == 5 || i == len(r)-1:
				b.WriteString(c + pad)
			default:
				b.WriteString(pad + c)
			}
			b.WriteString("  ")
		}
		fmt.Println(strings.TrimRight(b.String(), " "))
	}
}
