package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A hook's process group is not enough to kill everything it started: a
// child that calls setsid leaves the group. Where a cgroup v2 hierarchy is
// writable, each hook runs in a cgroup of its own, which no process leaves
// by itself, and killing the cgroup kills them all. Elsewhere serve becomes
// a child subreaper (orphans are re-parented to it, not to init), each hook
// carries a marker in its environment, and the kill walks /proc for the
// hook's descendants and for processes with the marker, until none is left.

// noCgroup makes hooks use the /proc fallback, for tests of it.
var noCgroup bool

// runMarker is the environment variable that tags a hook's processes.
const runMarker = "SLIPWAY_RUN_ID"

// cgroupRoot returns the directory of this process's own cgroup v2, if that
// hierarchy is mounted and we may create cgroups under it, else "".
var cgroupRoot = sync.OnceValue(func() string {
	mount := cgroup2Mount()
	if mount == "" {
		return ""
	}
	own := ""
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				own = p
			}
		}
	}
	dir := filepath.Join(mount, filepath.Clean("/"+own))
	probe := filepath.Join(dir, "slipway-probe-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(probe, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return ""
	}
	// A cgroup whose procs file we may not write is of no use (no
	// delegation). Moving a hook in can still fail; track falls back then.
	err := syscall.Access(filepath.Join(probe, "cgroup.procs"), 2 /* W_OK */)
	os.Remove(probe)
	if err != nil {
		return ""
	}
	return dir
})

func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ... mountpoint ... - fstype source options
		l := sc.Text()
		pre, post, ok := strings.Cut(l, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}

// subreaperOnce makes this process a child subreaper the first time a hook
// runs without a cgroup, and starts the sweep that reaps the orphans it gets.
var subreaperOnce sync.Once

func becomeSubreaper() {
	subreaperOnce.Do(func() {
		if err := prctlSubreaper(); err != nil {
			return
		}
		go sweepOrphans()
	})
}

func prctlSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	if e != 0 {
		return e
	}
	return nil
}

// sweepOrphans reaps zombie children nobody waits for: as a subreaper this
// process inherits orphans, which os/exec never waits on. A zombie is reaped
// only once it was one on two sweeps in a row, so a child os/exec is about
// to wait for (it does so at once) is never taken from it.
func sweepOrphans() {
	seen := map[int]bool{}
	for range time.Tick(5 * time.Second) {
		now := map[int]bool{}
		for _, pid := range zombieChildren() {
			if seen[pid] {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
				continue
			}
			now[pid] = true
		}
		seen = now
	}
}

type procInfo struct {
	pid, ppid int
	zombie    bool
}

func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(string(f[1]))
		out = append(out, procInfo{pid: pid, ppid: ppid, zombie: f[0][0] == 'Z'})
	}
	return out
}

func zombieChildren() []int {
	self := os.Getpid()
	var out []int
	for _, p := range allProcs() {
		if p.ppid == self && p.zombie {
			out = append(out, p.pid)
		}
	}
	return out
}

// tree tracks every process a hook started.
type tree struct {
	root   int
	cgroup string // the hook's cgroup dir, or ""
	marker string // runMarker's value in the hook's environment
}

// newTree prepares tracking for a hook whose processes carry marker; call
// track with the hook's pid before it runs anything (while it waits at its
// start gate).
func newTree(marker string) *tree {
	t := &tree{marker: marker}
	if root := cgroupRoot(); root != "" && !noCgroup {
		dir := filepath.Join(root, "slipway-run-"+marker)
		if err := os.Mkdir(dir, 0o700); err == nil {
			t.cgroup = dir
			return t
		}
	}
	becomeSubreaper()
	return t
}

// track puts the hook's first process in the hook's cgroup.
func (t *tree) track(pid int) error {
	t.root = pid
	if t.cgroup == "" {
		return nil
	}
	if err := os.WriteFile(filepath.Join(t.cgroup, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		os.Remove(t.cgroup)
		t.cgroup = ""
		becomeSubreaper()
		return fmt.Errorf("moving the hook into its cgroup: %w", err)
	}
	return nil
}

// kill kills every process of the hook (not the root's zombie, which its
// Wait reaps) and removes the cgroup. It returns once none is left, or after
// a few seconds.
func (t *tree) kill() {
	if t.cgroup != "" {
		killCgroup(t.cgroup)
		return
	}
	killMarked(t.root, t.marker)
}

func killCgroup(dir string) {
	procs := filepath.Join(dir, "cgroup.procs")
	kill := filepath.Join(dir, "cgroup.kill")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(procs)
		if err != nil {
			return // gone already
		}
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			break
		}
		if os.WriteFile(kill, []byte("1"), 0o600) == nil {
			continue // the kernel kills them all, forks included
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	removeCgroup(dir)
}

// removeCgroup removes an emptied cgroup dir. rmdir answers EBUSY until the
// kernel has finished tearing down the killed tasks, so it is retried briefly.
func removeCgroup(dir string) {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) || time.Now().After(deadline) {
			return
		}
	}
}

// release removes the hook's cgroup when Run returns, on every path (a hook
// that failed to start never reaches kill).
func (t *tree) release() {
	if t.cgroup != "" {
		removeCgroup(t.cgroup)
	}
}

// killMarked kills root's descendants and every process whose environment
// holds marker, round after round until a round finds none (a fork between
// two rounds is caught by the next).
func killMarked(root int, marker string) {
	self := os.Getpid()
	tag := []byte(runMarker + "=" + marker + "\x00")
	killed := map[int]bool{}
	for round := 0; round < 100; round++ {
		procs := allProcs()
		children := map[int][]int{}
		for _, p := range procs {
			children[p.ppid] = append(children[p.ppid], p.pid)
		}
		victims := map[int]bool{}
		var walk func(int)
		walk = func(pid int) {
			for _, c := range children[pid] {
				if !victims[c] {
					victims[c] = true
					walk(c)
				}
			}
		}
		if root > 1 {
			victims[root] = true
			walk(root)
		}
		for _, p := range procs {
			if p.zombie || p.pid == self || victims[p.pid] {
				continue
			}
			if env, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/environ"); err == nil && bytes.Contains(append(env, 0), tag) {
				victims[p.pid] = true
				walk(p.pid)
			}
		}
		live := 0
		for _, p := range procs {
			if victims[p.pid] && !p.zombie && p.pid != self {
				syscall.Kill(p.pid, syscall.SIGKILL)
				killed[p.pid] = true
				live++
			}
		}
		if live == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Orphans we killed are our children now (subreaper): reap them, not root
	// (its os/exec Wait does).
	for pid := range killed {
		if pid != root {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
	}
}
