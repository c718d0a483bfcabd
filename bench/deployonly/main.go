// Command deployonly times a deploy-only of a healthy app with no request in
// flight: `slipway deploy --store-id shop --deploy-only` (CLI wall time: a
// new instance started, gated, swapped in, the old one drained and stopped)
// against `kamal-proxy deploy` of the same Node.js backend (start a new
// backend process, deploy it, stop the old one), in one run, alternating.
//
//	go run ./bench/deployonly -kamal-proxy /path/to/kamal-proxy [-runs 7]
//
// kamal-proxy is not part of this repository: build it yourself and pass
// its path (or set KAMAL_PROXY). Without it only Slipway's column is shown.
// kamal-proxy listens on every interface with no flag to change that, so the
// bench runs it (and its backends) in a network namespace of its own
// (unshare/nsenter, needs root); the deploy CLI reaches it over its unix socket.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

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

type options struct {
	runs  int
	kamal string
	keep  bool
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 7, "deploys per system")
	flag.StringVar(&o.kamal, "kamal-proxy", os.Getenv("KAMAL_PROXY"), "path to a kamal-proxy binary (default $KAMAL_PROXY); empty: Slipway only")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "deployonly:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "slipway-deployonly-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("temp dir", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sl, err := startSlipway(ctx, dir)
	if sl != nil {
		defer sl.close()
	}
	if err != nil {
		return err
	}
	var kp *kamal
	if o.kamal != "" {
		kp, err = startKamal(ctx, o.kamal, dir, filepath.Join(sl.repo, "apps/web/server.js"))
		if kp != nil {
			defer kp.close()
		}
		if err != nil {
			return err
		}
	} else {
		fmt.Println("no kamal-proxy given (-kamal-proxy or KAMAL_PROXY): Slipway only")
	}
	var st, kt []time.Duration
	for i := range o.runs {
		d, err := sl.deployOnly(ctx)
		if err != nil {
			return fmt.Errorf("slipway run %d: %w", i+1, err)
		}
		st = append(st, d)
		line := fmt.Sprintf("run %d: slipway %s", i+1, ms(d))
		if kp != nil {
			d, err := kp.deploy(ctx)
			if err != nil {
				return fmt.Errorf("kamal-proxy run %d: %w", i+1, err)
			}
			kt = append(kt, d)
			line += fmt.Sprintf("   kamal-proxy %s", ms(d))
		}
		fmt.Println(line)
	}
	report(st, kt)
	return nil
}

func report(st, kt []time.Duration) {
	fmt.Println()
	fmt.Println("system       median   min      max")
	fmt.Printf("slipway      %-8s %-8s %s\n", ms(median(st)), ms(slices.Min(st)), ms(slices.Max(st)))
	goal := median(st) <= time.Second
	if len(kt) > 0 {
		fmt.Printf("kamal-proxy  %-8s %-8s %s\n", ms(median(kt)), ms(slices.Min(kt)), ms(slices.Max(kt)))
		ratio := float64(median(st)) / float64(median(kt))
		fmt.Printf("\nratio slipway/kamal-proxy (medians): %.2fx\n", ratio)
		goal = goal && ratio <= 1.0
	}
	verdict := "MISS"
	if goal {
		verdict = "OK"
	}
	fmt.Printf("goal: median <= 1.0 s and <= 1.0x kamal-proxy: %s\n", verdict)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// --- Slipway ---

type slipway struct {
	bin, repo, state string
	serve            *exec.Cmd
	env              []string
}

func startSlipway(ctx context.Context, dir string) (*slipway, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	s := &slipway{bin: filepath.Join(dir, "slipway"), repo: filepath.Join(dir, "repo"), state: filepath.Join(dir, "state"), env: proxybench.EnvWithout("SLIPWAY_", "KAMAL_PROXY")}
	if err := proxybench.Run(root, s.env, "go", "build", "-o", s.bin, "./cmd/slipway"); err != nil {
		return nil, err
	}
	if err := writeRepo(s.repo); err != nil {
		return nil, err
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "bench"}} {
		if err := proxybench.Run(s.repo, s.env, "git", args...); err != nil {
			return nil, err
		}
	}
	addr, err := proxybench.FreePort()
	if err != nil {
		return nil, err
	}
	s.serve = exec.Command(s.bin, "serve", "-C", s.repo, "--state-dir", s.state, "--http", addr)
	s.serve.Env = s.env
	s.serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	s.serve.Stdout, s.serve.Stderr = logf, logf
	if err := s.serve.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := s.cli(ctx, "status"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return s, errors.New("slipway serve did not answer within 30s")
		}
	}
	t := time.Now()
	if out, err := s.cli(ctx, "deploy", "--store-id", "shop"); err != nil {
		return s, fmt.Errorf("first deploy: %w\n%s", err, out)
	}
	fmt.Printf("slipway serve on %s; first deploy (build, pack, deploy) %s\n", addr, ms(time.Since(t)))
	return s, nil
}

func (s *slipway) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bin, append(args, "-C", s.repo, "--state-dir", s.state)...)
	cmd.Env = s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// deployOnly times the CLI from exec to exit.
func (s *slipway) deployOnly(ctx context.Context) (time.Duration, error) {
	t := time.Now()
	out, err := s.cli(ctx, "deploy", "--store-id", "shop", "--deploy-only")
	d := time.Since(t)
	if err != nil || !strings.Contains(out, " live ") {
		return d, fmt.Errorf("deploy-only: %v\n%s", err, out)
	}
	return d, nil
}

func (s *slipway) close() {
	if s.serve != nil && s.serve.Process != nil {
		s.serve.Process.Signal(syscall.SIGINT)
		s.serve.Wait()
	}
	// Instances keep running after serve (by design); stop what the bench started.
	proxybench.StopUnder(s.state)
}

// --- kamal-proxy ---

type kamal struct {
	bin, sock, script, home string
	proxy                   *exec.Cmd
	backend                 *exec.Cmd
	env                     []string
	port                    int
}

func startKamal(ctx context.Context, bin, dir, script string) (*kamal, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kamal-proxy: %w", err)
	}
	k := &kamal{bin: bin, sock: filepath.Join(dir, "kamal-proxy.sock"), script: script, home: filepath.Join(dir, "kamal-home"), port: 20000}
	k.env = append(proxybench.EnvWithout("SLIPWAY_", "KAMAL_PROXY"), "HOME="+k.home, "KAMAL_PROXY_SOCKET="+k.sock)
	if err := os.MkdirAll(k.home, 0o700); err != nil {
		return nil, err
	}
	// Its own network namespace: kamal-proxy binds every interface.
	k.proxy = exec.Command("unshare", "--net", "sh", "-c", `ip link set lo up && exec "$0" run --http-port 18080 --https-port 18443`, bin)
	k.proxy.Env = k.env
	k.proxy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	logf, err := os.Create(filepath.Join(dir, "kamal-proxy.log"))
	if err != nil {
		return nil, err
	}
	k.proxy.Stdout, k.proxy.Stderr = logf, logf
	if err := k.proxy.Start(); err != nil {
		return nil, fmt.Errorf("kamal-proxy run (needs root for unshare --net): %w", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("unix", k.sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return k, errors.New("kamal-proxy did not open its socket within 20s (see kamal-proxy.log)")
		}
	}
	if _, err := k.deploy(ctx); err != nil {
		return k, fmt.Errorf("first kamal-proxy deploy: %w", err)
	}
	fmt.Println("kamal-proxy running in its own network namespace")
	return k, nil
}

// deploy times what a deploy-only is for kamal-proxy: start the new backend,
// `kamal-proxy deploy` it (default health checks, path /healthz), stop the old.
func (k *kamal) deploy(ctx context.Context) (time.Duration, error) {
	t := time.Now()
	k.port++
	be := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(k.proxy.Process.Pid)+"/ns/net", "node", k.script)
	be.Env = append(proxybench.EnvWithout("SLIPWAY_", "KAMAL_PROXY"), "PORT="+strconv.Itoa(k.port), "HOST=127.0.0.1", "RELEASE="+strconv.Itoa(k.port))
	be.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := be.Start(); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, k.bin, "deploy", "web", "--target", "127.0.0.1:"+strconv.Itoa(k.port), "--health-check-path", "/healthz")
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		be.Process.Kill()
		be.Wait()
		return 0, fmt.Errorf("kamal-proxy deploy: %v\n%s", err, out)
	}
	if old := k.backend; old != nil {
		old.Process.Signal(syscall.SIGTERM)
		old.Wait()
	}
	k.backend = be
	return time.Since(t), nil
}

func (k *kamal) close() {
	if k.backend != nil {
		k.backend.Process.Kill()
		k.backend.Wait()
	}
	if k.proxy != nil && k.proxy.Process != nil {
		k.proxy.Process.Signal(syscall.SIGTERM)
		k.proxy.Wait()
	}
}

// --- helpers ---

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench inside the slipway module (go run ./bench/deployonly)")
	}
	return filepath.Dir(gomod), nil
}
