package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// nodeFloor is the peer: the rollout's unavoidable work done by hand. Every
// store's two Node servers run; then, wave by wave with the stores of a
// wave at once, each store starts two new servers, polls their /healthz
// every 5 ms until they answer, and stops the old two (SIGTERM, wait).
// It returns the time of the waves.
func nodeFloor(repo string, stores, wave int) (time.Duration, error) {
	apps := []string{"apps/storefront-unified-nextjs", "apps/storefront-middleware"}
	old := make([][]*exec.Cmd, stores)
	defer func() {
		for _, cs := range old {
			stopAll(cs)
		}
	}()
	// Like Slipway's deploy: start every app's server, then gate them together.
	start := func(s int) ([]*exec.Cmd, error) {
		var cs []*exec.Cmd
		var ports []int
		for _, app := range apps {
			c, port, err := startNode(filepath.Join(repo, app), s)
			if err != nil {
				stopAll(cs)
				return nil, err
			}
			cs, ports = append(cs, c), append(ports, port)
		}
		for i, port := range ports {
			if err := waitHealthy(port); err != nil {
				stopAll(cs)
				return nil, fmt.Errorf("node in %s: %w", apps[i], err)
			}
		}
		return cs, nil
	}
	for s := range stores {
		cs, err := start(s)
		if err != nil {
			return 0, err
		}
		old[s] = cs
	}
	t := time.Now()
	for w := 0; w < stores; w += wave {
		var wg sync.WaitGroup
		errs := make([]error, stores)
		for s := w; s < min(w+wave, stores); s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cs, err := start(s)
				if err != nil {
					errs[s] = err
					return
				}
				stopAll(old[s])
				old[s] = cs
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return 0, err
			}
		}
	}
	return time.Since(t), nil
}

// startNode starts `node server.js` in dir on a free port.
func startNode(dir string, store int) (*exec.Cmd, int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := exec.Command("node", "server.js")
	c.Dir = dir
	// The env of a process-runtime instance, not the bench's: a variable such
	// as NODE_EXTRA_CA_CERTS alone makes node parse the CA bundle at start
	// (~60 ms of CPU more per server).
	c.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("PORT=%d", port), "HOST=127.0.0.1", fmt.Sprintf("SLIPWAY_STORE_ID=s%02d", store+1)}
	if err := c.Start(); err != nil {
		return nil, 0, err
	}
	return c, port, nil
}

// waitHealthy polls /healthz every 5 ms until it answers, up to 30 s.
func waitHealthy(port int) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		res, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			res.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after 30s: %w", err)
		}
	}
}

func stopAll(cs []*exec.Cmd) {
	for _, c := range cs {
		c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cs {
		c.Wait()
	}
}
