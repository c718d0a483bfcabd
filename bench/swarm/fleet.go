package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// fleetRepo writes a monorepo of n stores sharing one small Node.js app.
func fleetRepo(dir string, n int) error {
	var stores strings.Builder
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("s%02d", i)
		fmt.Fprintf(&stores, "  %s: {projectName: bench-%s, region: local, framework: next}\n", id, id)
		if err := writeFile(filepath.Join(dir, "apps/stores", id, "README.md"), "store "+id+"\n"); err != nil {
			return err
		}
	}
	files := map[string]string{
		"slipway.yaml": `project: fleet
apps:
  - id: web
    path: apps/web
    framework: next
    build: "true"
    port: 3000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js"]}
stores:
` + stores.String(),
		"apps/web/server.js": `const http = require("http");
const release = process.env.SLIPWAY_RELEASE || "?";
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") { res.end("ok"); return; }
  res.end("release=" + release + "\n");
});
server.listen(Number(process.env.PORT || 3000), process.env.HOST || "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`,
		".gitignore": ".out/\n.slipway/\n",
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(dir, name), body); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p, body string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(body), 0o644)
}

// fleetBench times `deploy --all --deploy-only --wave W` of n stores against
// `deploy --store-id s01 --deploy-only`, on the process runtime, and reads
// serve's RSS.
func fleetBench(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "slipway-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin, repo, state := filepath.Join(dir, "slipway"), filepath.Join(dir, "repo"), filepath.Join(dir, "state")
	env := proxybench.EnvWithout("SLIPWAY_")
	if err := proxybench.Run(root, env, "go", "build", "-o", bin, "./cmd/slipway"); err != nil {
		return err
	}
	if err := fleetRepo(repo, o.stores); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "bench"}} {
		if err := proxybench.Run(repo, env, "git", args...); err != nil {
			return err
		}
	}
	addr, err := proxybench.FreePort()
	if err != nil {
		return err
	}
	serve := exec.Command(bin, "serve", "-C", repo, "--state-dir", state, "--http", addr)
	serve.Env = env
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	serve.Stdout, serve.Stderr = logf, logf
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() {
		serve.Process.Signal(syscall.SIGINT)
		serve.Wait()
		proxybench.StopUnder(state)
	}()
	cli := func(args ...string) (string, time.Duration, error) {
		cmd := exec.CommandContext(ctx, bin, append(args, "-C", repo, "--state-dir", state)...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t := time.Now()
		err := cmd.Run()
		return out.String(), time.Since(t), err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, _, err := cli("status"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("slipway serve did not answer within 30s")
		}
	}
	out, took, err := cli("deploy", "--all")
	if err != nil {
		return fmt.Errorf("first deploy --all: %v\n%s", err, tail(out, 40))
	}
	fmt.Printf("fleet: %d stores live after the first deploy --all (build, pack, deploy) in %s; serve RSS %s\n", o.stores, ms(took), rss(serve.Process.Pid))

	var one, all []time.Duration
	for r := 0; r < o.fleetRuns; r++ {
		out, d, err := cli("deploy", "--store-id", "s01", "--deploy-only")
		if err != nil {
			return fmt.Errorf("deploy-only of one store: %v\n%s", err, tail(out, 20))
		}
		one = append(one, d)
		out, d, err = cli("deploy", "--all", "--deploy-only", "--wave", strconv.Itoa(o.wave))
		if err != nil {
			return fmt.Errorf("deploy --all --wave: %v\n%s", err, tail(out, 40))
		}
		if n := strings.Count(out, " live "); n < o.stores {
			return fmt.Errorf("deploy --all --wave: %d stores live, want %d\n%s", n, o.stores, tail(out, 40))
		}
		all = append(all, d)
		fmt.Printf("run %d: one store %s   %d stores in waves of %d %s   serve RSS %s\n", r+1, ms(one[r]), o.stores, o.wave, ms(d), rss(serve.Process.Pid))
		if o.verbose {
			fmt.Println(out)
		}
	}
	m1, ma := median(one), median(all)
	fmt.Printf("\nfleet (process runtime, deploy-only): one store %s, %d stores in waves of %d %s: %.2fx one store's deploy (goal <= 3x); serve peak RSS %s (goal <= 150 MB)\n",
		ms(m1), o.stores, o.wave, ms(ma), float64(ma)/float64(m1), peakRSS(serve.Process.Pid))
	return nil
}

// rss reads VmRSS of pid.
func rss(pid int) string { return procStatus(pid, "VmRSS:") }

// peakRSS reads VmHWM (the high-water mark) of pid.
func peakRSS(pid int) string { return procStatus(pid, "VmHWM:") }

func procStatus(pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.Atoi(f[1])
				return fmt.Sprintf("%.1f MB", float64(kb)/1024)
			}
		}
	}
	return "?"
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench inside the slipway module (go run ./bench/swarm)")
	}
	return filepath.Dir(gomod), nil
}
