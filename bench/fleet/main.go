// Command fleet times `slipway up` of a fleet of stores: compose, build, pack
// and deploy every store of a generated monorepo (Alokai layout: a Next-style
// storefront and a middleware per store, each a small Node.js server), from
// exec until up prints "serving on". Goal: 30 stores in ≤ 8 s.
//
//	go run ./bench/fleet [-stores 30] [-runs 2]
//
// There is no peer here: the figure is compared with the baseline
// (11.5 s for 30 stores before this work).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	stores := flag.Int("stores", 30, "stores in the generated monorepo")
	runs := flag.Int("runs", 2, "runs (each on a fresh state dir)")
	keep := flag.Bool("keep", false, "keep the temp dir")
	flag.Parse()
	if err := run(*stores, *runs, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(stores, runs int, keep bool) error {
	dir, err := os.MkdirTemp("", "slipway-fleet-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("temp dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "slipway")
	if err := sh(root, "go", "build", "-o", bin, "./cmd/slipway"); err != nil {
		return err
	}
	repo := filepath.Join(dir, "repo")
	if err := writeFleet(repo, stores); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "fleet"}} {
		if err := sh(repo, "git", args...); err != nil {
			return err
		}
	}
	var times []time.Duration
	for i := range runs {
		d, phases, err := upOnce(bin, repo, filepath.Join(dir, fmt.Sprintf("state-%d", i)))
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		times = append(times, d)
		fmt.Printf("run %d: up of %d stores: %s (%s)\n", i+1, stores, d.Round(10*time.Millisecond), phases)
	}
	best := slices.Min(times)
	verdict := "MISS"
	if best <= 8*time.Second {
		verdict = "OK"
	}
	fmt.Printf("\nbest %s, median %s; goal ≤ 8 s for 30 stores (baseline 11.5 s): %s\n", best.Round(10*time.Millisecond), median(times).Round(10*time.Millisecond), verdict)
	return nil
}

var deployTime = regexp.MustCompile(`\s(\d+(?:\.\d+)?)(ms|s)\s*$`)

// upOnce runs slipway up until it serves, then stops it with SIGINT.
func upOnce(bin, repo, state string) (time.Duration, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "up", "-C", repo, "--state-dir", state, "--http", addr)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, "", err
	}
	var stderr strings.Builder
	errR, _ := cmd.StderrPipe()
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	var buildAt time.Duration
	go func() {
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			line := sc.Text()
			if buildAt == 0 && strings.Contains(line, "deploy: started") {
				buildAt = time.Since(t)
			}
			stderr.WriteString(line + "\n")
		}
	}()
	sc := bufio.NewScanner(out)
	var took time.Duration
	var slowest time.Duration
	for sc.Scan() {
		line := sc.Text()
		if m := deployTime.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			d := time.Duration(v * float64(time.Millisecond))
			if m[2] == "s" {
				d = time.Duration(v * float64(time.Second))
			}
			slowest = max(slowest, d)
		}
		if strings.HasPrefix(line, "serving on") {
			took = time.Since(t)
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	go io.Copy(io.Discard, out)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if took == 0 {
		return 0, "", errors.New("slipway up did not serve:\n" + lastLines(stderr.String(), 30))
	}
	return took, fmt.Sprintf("first instance started at %s, slowest store's deploy %s", buildAt.Round(10*time.Millisecond), slowest.Round(10*time.Millisecond)), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeFleet writes a monorepo with n stores under a template store, each
// overriding one storefront file so that every store has its own image.
func writeFleet(dir string, n int) error {
	server := `const http = require("http");
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") { res.end("ok"); return; }
  res.end((process.env.SLIPWAY_STORE_ID || "?") + " " + require("./brand.json").name + "\n");
});
server.listen(Number(process.env.PORT || 3000), process.env.HOST || "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`
	files := map[string]string{
		"apps/storefront-unified-nextjs/server.js":  server,
		"apps/storefront-unified-nextjs/brand.json": `{"name": "base"}`,
		"apps/storefront-middleware/server.js":      strings.Replace(server, `require("./brand.json").name`, `"middleware"`, 1),
		"apps/stores/brand/README.md":               "template store\n",
	}
	var cfg strings.Builder
	cfg.WriteString(`project: fleet
apps:
  - id: storefront-unified-nextjs
    path: apps/storefront-unified-nextjs
    framework: next
    build: "true"
    port: 3000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js", "brand.json"]}
  - id: storefront-middleware
    path: apps/storefront-middleware
    build: "true"
    port: 4000
    health: {path: /healthz}
    entrypoint: [node, server.js]
    deploy: {include: ["server.js"]}
stores:
  brand: {template: true, framework: next}
`)
	for i := range n {
		id := fmt.Sprintf("s%02d", i+1)
		fmt.Fprintf(&cfg, "  %s: {projectName: fleet-%s, region: local}\n", id, id)
		files["apps/stores/brand/stores/"+id+"/storefront-unified-nextjs/brand.json"] = fmt.Sprintf(`{"name": "%s"}`, id)
	}
	files["slipway.yaml"] = cfg.String()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run inside the slipway module (go run ./bench/fleet)")
	}
	return filepath.Dir(gomod), nil
}

func sh(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return env
}
