// Command remote measures what the remote API costs: the same deploy-only job
// of the multistore example's us store, and the same status read, through the
// local unix socket and through `slipway serve --api` over HTTP with a bearer
// token, alternating in one run against one serve. It prints both medians and
// the overhead (goal: ≤ 50 ms per deploy).
//
//	go run ./bench/remote [-rounds 5] [-reads 30]
//
// Needs Node.js 20 (the example apps) and a git binary. Everything runs on
// loopback in a temp dir that is removed at the end.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 5, "deploy-only jobs per door")
	reads := flag.Int("reads", 30, "status reads per door")
	keep := flag.Bool("keep", false, "keep the temp dir")
	flag.Parse()
	if err := bench(*rounds, *reads, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench/remote:", err)
		os.Exit(1)
	}
}

type stack struct {
	dir, bin, repo, api string
	env                 []string
	serve               *exec.Cmd
}

func bench(rounds, reads int, keep bool) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("the example apps need Node.js 20 (node on PATH)")
	}
	s, err := setup()
	if s != nil && !keep {
		defer os.RemoveAll(s.dir)
	}
	if s != nil && s.serve != nil {
		defer func() { s.serve.Process.Signal(syscall.SIGINT); s.serve.Wait() }()
	}
	if err != nil {
		return err
	}
	if _, err := s.slipway(nil, "deploy", "--store-id", "us"); err != nil {
		return fmt.Errorf("first deploy: %w", err)
	}
	tok, err := s.slipway(nil, "token", "create", "--name", "bench", "--scope", "deploy")
	if err != nil {
		return err
	}
	remote := []string{"SLIPWAY_SERVER=" + s.api, "SLIPWAY_TOKEN=" + strings.TrimSpace(tok)}
	var localDeploy, remoteDeploy, localRead, remoteRead []time.Duration
	for i := range rounds {
		// Alternate which door goes first, so a warming cache favours neither.
		order := [][]string{nil, remote}
		if i%2 == 1 {
			order = [][]string{remote, nil}
		}
		for _, env := range order {
			d, err := s.timed(env, "deploy", "--store-id", "us", "--deploy-only")
			if err != nil {
				return err
			}
			if env == nil {
				localDeploy = append(localDeploy, d)
			} else {
				remoteDeploy = append(remoteDeploy, d)
			}
		}
	}
	for range reads {
		for _, env := range [][]string{nil, remote} {
			d, err := s.timed(env, "status")
			if err != nil {
				return err
			}
			if env == nil {
				localRead = append(localRead, d)
			} else {
				remoteRead = append(remoteRead, d)
			}
		}
	}
	report("deploy --deploy-only (CLI wall time)", localDeploy, remoteDeploy, 50*time.Millisecond)
	report("status (CLI wall time)", localRead, remoteRead, 0)
	return nil
}

func report(what string, local, remote []time.Duration, goal time.Duration) {
	l, r := median(local), median(remote)
	fmt.Printf("%-40s socket median %8s  http median %8s  overhead %+8s  (n=%d each; socket min %s, http min %s)\n",
		what, l.Round(time.Millisecond), r.Round(time.Millisecond), (r - l).Round(time.Millisecond), len(local),
		slices.Min(local).Round(time.Millisecond), slices.Min(remote).Round(time.Millisecond))
	if goal > 0 {
		verdict := "MEETS"
		if r-l > goal {
			verdict = "MISSES"
		}
		fmt.Printf("%-40s goal overhead ≤ %s: %s\n", "", goal, verdict)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func (s *stack) timed(extra []string, args ...string) (time.Duration, error) {
	t := time.Now()
	_, err := s.slipway(extra, args...)
	return time.Since(t), err
}

func (s *stack) slipway(extra []string, args ...string) (string, error) {
	cmd := exec.Command(s.bin, append(args, "-C", s.repo)...)
	cmd.Dir, cmd.Env = s.repo, append(slices.Clone(s.env), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("slipway %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// setup builds slipway, copies the example into a git repo and starts serve with --api.
func setup() (*stack, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "slipway-bench-remote-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, bin: filepath.Join(dir, "slipway"), repo: filepath.Join(dir, "multistore"), env: cleanEnv(dir)}
	steps := [][]string{
		{root, "go", "build", "-o", s.bin, "./cmd/slipway"},
		{root, "cp", "-a", filepath.Join(root, "examples", "multistore"), s.repo},
		{s.repo, "rm", "-rf", ".out", ".slipway"},
		{s.repo, "git", "init", "-q"},
		{s.repo, "git", "add", "."},
		{s.repo, "git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false", "commit", "-qm", "bench/remote"},
	}
	for _, st := range steps {
		cmd := exec.Command(st[1], st[2:]...)
		cmd.Dir, cmd.Env = st[0], s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			return s, fmt.Errorf("%s: %v\n%s", strings.Join(st[1:], " "), err, out)
		}
	}
	httpAddr, apiAddr := freePort(), freePort()
	s.api = "http://" + apiAddr
	s.serve = exec.Command(s.bin, "serve", "-C", s.repo, "--http", httpAddr, "--api", apiAddr)
	s.serve.Dir, s.serve.Env = s.repo, s.env
	s.serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	logf, _ := os.Create(filepath.Join(dir, "serve.log"))
	s.serve.Stdout, s.serve.Stderr = logf, logf
	if err := s.serve.Start(); err != nil {
		return s, err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", apiAddr); err == nil {
			c.Close()
			return s, nil
		}
	}
	return s, fmt.Errorf("serve did not listen on %s (see %s)", apiAddr, filepath.Join(dir, "serve.log"))
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv drops SLIPWAY_* settings (they would change what the CLI does) and
// points the login file into the temp dir.
func cleanEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return append(env, "SLIPWAY_LOGIN_FILE="+filepath.Join(dir, "login.json"))
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the bench inside the slipway module (go run ./bench/remote)")
	}
	return filepath.Dir(gomod), nil
}
