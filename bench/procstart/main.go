// Command procstart measures what the process runtime adds to an instance
// start, in CPU time (which a loaded machine distorts far less than wall
// time): N instances of a small Node.js server started through
// process.Driver (start gate, log pipe, record, port), gated on /healthz and
// stopped, against the peer: the same N `node server.js` started directly
// with the same env and dir, polled and stopped the same way.
//
// Each side runs in a child process; this process is a child subreaper, so
// the CPU of everything either side started (node, shells, log helpers,
// also those that outlive the child) is counted once they are reaped.
//
//	go run ./bench/procstart            # 60 instances in waves of 20, 3 rounds
//	go run ./bench/procstart -n 30 -wave 10 -rounds 5
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/process"
	"github.com/slipway-dev/slipway/internal/imageref"
	"github.com/slipway-dev/slipway/internal/registry"
)

const server = `const http = require("http");
const server = http.createServer((req, res) => { res.end("ok"); });
server.listen(Number(process.env.PORT), process.env.HOST);
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`

type options struct {
	n, wave, rounds int
	child           string
	dir, profile    string
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 60, "instances per round")
	flag.IntVar(&o.wave, "wave", 20, "instances started at once")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds (each side once per round)")
	flag.StringVar(&o.child, "child", "", "internal: run one side (slipway|node) in dir")
	flag.StringVar(&o.dir, "dir", "", "internal: the child's work dir")
	flag.StringVar(&o.profile, "profile", "", "write the process-driver side's CPU profile of its starts to this file")
	flag.Parse()
	var err error
	if o.child != "" {
		err = child(o)
	} else {
		err = parent(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "procstart:", err)
		os.Exit(1)
	}
}

// side is one child run's figures.
type side struct {
	cpu, wall time.Duration
}

func parent(o options) error {
	if err := becomeSubreaper(); err != nil {
		return fmt.Errorf("becoming a child subreaper: %w", err)
	}
	fmt.Printf("procstart: %d instances of a Node.js server, %d at once, %d rounds; load average %s\n", o.n, o.wave, o.rounds, loadavg())
	var ours, floor []side
	var added []time.Duration
	for r := range o.rounds {
		s, err := runSide(o, "slipway")
		if err != nil {
			return err
		}
		f, err := runSide(o, "node")
		if err != nil {
			return err
		}
		ours, floor, added = append(ours, s), append(floor, f), append(added, s.cpu-f.cpu)
		fmt.Printf("round %d: process driver %s CPU (%s wall) | plain node %s CPU (%s wall) | added per instance %.1f ms CPU | load %s\n",
			r+1, ms(s.cpu), ms(s.wall), ms(f.cpu), ms(f.wall), perInstance(s.cpu-f.cpu, o.n), loadavg())
	}
	s, f := median(ours), median(floor)
	slices.Sort(added)
	fmt.Printf("median: process driver %s CPU, plain node %s CPU: %.2f× the floor's CPU; added per instance start (median of the rounds) %.1f ms of CPU (node itself: %.1f ms)\n",
		ms(s.cpu), ms(f.cpu), float64(s.cpu)/float64(f.cpu), perInstance(added[len(added)/2], o.n), perInstance(f.cpu, o.n))
	fmt.Printf("median wall of the starts: process driver %s, plain node %s (%.2f×)\n", ms(s.wall), ms(f.wall), float64(s.wall)/float64(f.wall))
	return nil
}

// runSide runs one child and returns the CPU of everything it started
// (minus its set-up, which it reports) and the wall time of its starts.
func runSide(o options, which string) (side, error) {
	dir, err := os.MkdirTemp("", "slipway-procstart-")
	if err != nil {
		return side{}, err
	}
	defer os.RemoveAll(dir)
	before := childrenCPU()
	exe, err := os.Executable()
	if err != nil {
		return side{}, err
	}
	args := []string{"-child", which, "-dir", dir, "-n", strconv.Itoa(o.n), "-wave", strconv.Itoa(o.wave)}
	if o.profile != "" && which == "slipway" {
		args = append(args, "-profile", o.profile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return side{}, fmt.Errorf("%s side: %w", which, err)
	}
	reapOrphans()
	var setup, wall time.Duration
	if _, err := fmt.Sscanf(string(out), "setup %d wall %d", &setup, &wall); err != nil {
		return side{}, fmt.Errorf("%s side printed %q", which, out)
	}
	return side{cpu: childrenCPU() - before - setup, wall: wall}, nil
}

// reapOrphans waits for what the child left (a log helper finishing after
// its instances): as a subreaper we are their parent now.
func reapOrphans() {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.ECHILD) {
			return
		}
		if pid <= 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// child runs one side: set-up (not counted), then n starts in waves, each
// gated on its answer, then every instance stopped.
func child(o options) error {
	work := filepath.Join(o.dir, "app")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "server.js"), []byte(server), 0o644); err != nil {
		return err
	}
	var start func(i int) (addr string, stop func() error, err error)
	switch o.child {
	case "slipway":
		d, img, err := setupDriver(o.dir)
		if err != nil {
			return err
		}
		start = func(i int) (string, func() error, error) {
			inst, err := d.Start(context.Background(), driver.Spec{Image: img, Name: fmt.Sprintf("i%d", i), Env: map[string]string{"SLIPWAY_STORE_ID": "s01"}})
			if err != nil {
				return "", nil, err
			}
			return inst.Addr, func() error { return d.Stop(context.Background(), inst.ID) }, nil
		}
	case "node":
		start = func(int) (string, func() error, error) { return startNode(work) }
	default:
		return fmt.Errorf("-child %q: want slipway or node", o.child)
	}
	// The first start (image unpack, the log keeper) is set-up for both.
	addr, stop, err := start(-1)
	if err == nil {
		err = waitHealthy(addr)
	}
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	stop()
	setup := selfCPU() + childrenCPU()
	self0 := selfCPU()
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	t := time.Now()
	stops, err := startWaves(o, start)
	wall := time.Since(t)
	for _, s := range stops {
		s()
	}
	if err != nil {
		return err
	}
	fmt.Printf("setup %d wall %d\n", setup, wall)
	fmt.Fprintf(os.Stderr, "  %s side: its own process %s CPU, reaped children %s\n", o.child, ms(selfCPU()-self0), ms(childrenCPU()-setup+self0))
	return nil
}

func startWaves(o options, start func(int) (string, func() error, error)) ([]func() error, error) {
	var mu sync.Mutex
	var stops []func() error
	for w := 0; w < o.n; w += o.wave {
		var wg sync.WaitGroup
		errs := make([]error, o.n)
		for i := w; i < min(w+o.wave, o.n); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr, stop, err := start(i)
				if err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				stops = append(stops, stop)
				mu.Unlock()
				errs[i] = waitHealthy(addr)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return stops, err
		}
	}
	return stops, nil
}

// setupDriver publishes the server as an image in an OCI layout and opens
// a process driver.
func setupDriver(dir string) (*process.Driver, driver.Image, error) {
	l, err := registry.OpenLayout(filepath.Join(dir, "layout"))
	if err != nil {
		return nil, driver.Image{}, err
	}
	img, err := serverImage()
	if err != nil {
		return nil, driver.Image{}, err
	}
	ref, _ := name.NewTag("slipway.bench/procstart:1")
	dg, err := l.Publish(context.Background(), ref, img)
	if err != nil {
		return nil, driver.Image{}, err
	}
	d, err := process.New(filepath.Join(dir, "data"))
	if err != nil {
		return nil, driver.Image{}, err
	}
	return d, driver.Image{Ref: imageref.LayoutPrefix + l.Dir() + "@" + dg.DigestStr()}, nil
}

func serverImage() (v1.Image, error) {
	layer, err := tarLayer(map[string]string{"app/server.js": server})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	return mutate.Config(img, v1.Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app"})
}

func tarLayer(files map[string]string) (v1.Layer, error) {
	b, err := tarFiles(files)
	if err != nil {
		return nil, err
	}
	return static.NewLayer(b, types.OCILayer), nil
}

// startNode is the peer: node started directly, with the env a
// process-runtime instance gets.
func startNode(dir string) (string, func() error, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := exec.Command("node", "server.js")
	c.Dir = dir
	c.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1", "SLIPWAY_STORE_ID=s01"}
	if err := c.Start(); err != nil {
		return "", nil, err
	}
	stop := func() error {
		c.Process.Signal(syscall.SIGTERM)
		return c.Wait()
	}
	return fmt.Sprintf("127.0.0.1:%d", port), stop, nil
}

var hc = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// waitHealthy polls every 5 ms until the server answers, up to 30 s.
func waitHealthy(addr string) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		res, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy after 30s: %w", addr, err)
		}
	}
}

func selfCPU() time.Duration     { return rusage(syscall.RUSAGE_SELF) }
func childrenCPU() time.Duration { return rusage(syscall.RUSAGE_CHILDREN) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(ss []side) side {
	cpus := make([]time.Duration, len(ss))
	walls := make([]time.Duration, len(ss))
	for i, s := range ss {
		cpus[i], walls[i] = s.cpu, s.wall
	}
	slices.Sort(cpus)
	slices.Sort(walls)
	return side{cpu: cpus[len(cpus)/2], wall: walls[len(walls)/2]}
}

func perInstance(d time.Duration, n int) float64 {
	return float64(d) / float64(time.Millisecond) / float64(n)
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func loadavg() string {
	f, err := os.Open("/proc/loadavg")
	if err != nil {
		return "?"
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	return strings.Join(strings.Fields(line)[:3], " ")
}
