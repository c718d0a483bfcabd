package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// result is one target's figures over all rounds.
type result struct {
	fixedLat    []time.Duration
	fixedP99s   []time.Duration
	fixedErrs   int
	satReqs     int
	satErrs     int
	satTime     time.Duration
	hsCount     int
	hsErrs      int
	hsTime      time.Duration
	satRounds   []float64
	hsRounds    []float64
	fixedRounds int
}

func benchProxy(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "bench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := makeCerts(dir)
	if err != nil {
		return err
	}
	backend, err := startBackend(o)
	if err != nil {
		return err
	}
	defer backend.Stop()
	peers, err := startPeers(o, dir, c, backend.Addr)
	defer func() {
		for _, p := range peers {
			p.stop()
		}
	}()
	if err != nil {
		return err
	}
	fmt.Printf("bench/tls: HTTPS proxying on 127.0.0.1 — %d CPUs, backend: Go net/http %d-byte body; one ECDSA P-256 certificate for all; HTTP/1.1 over TLS from a Go client\n", numCPU(), o.body)
	for _, p := range peers {
		fmt.Printf("  %-8s %s\n", p.name, p.version)
	}
	res := map[string]*result{}
	for _, p := range peers {
		res[p.name] = &result{}
		warm(ctx, p.addr, c) // connections, TLS session state, the JIT of nothing: just warm pools
	}
	slice := o.duration / time.Duration(o.rounds)
	for round := 0; round < o.rounds && ctx.Err() == nil; round++ {
		order := slices.Clone(peers)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			r := res[p.name]
			lat, errs := fixedRate(ctx, p.addr, c, o.rate, slice)
			r.fixedLat = append(r.fixedLat, lat...)
			r.fixedP99s = append(r.fixedP99s, proxybench.Summarise(slices.Clone(lat)).P99)
			r.fixedErrs += errs
			n, errs := saturate(ctx, p.addr, c, o.conns, slice)
			r.satReqs, r.satErrs, r.satTime = r.satReqs+n, r.satErrs+errs, r.satTime+slice
			r.satRounds = append(r.satRounds, float64(n)/slice.Seconds())
			n, errs = handshakes(ctx, p.addr, c, o.hsConns, slice)
			r.hsCount, r.hsErrs, r.hsTime = r.hsCount+n, r.hsErrs+errs, r.hsTime+slice
			r.hsRounds = append(r.hsRounds, float64(n)/slice.Seconds())
		}
	}
	report(o, peers, res)
	return nil
}

type runningPeer struct {
	peer
	version string
}

func startPeers(o options, dir string, c *certs, backend string) ([]runningPeer, error) {
	var out []runningPeer
	ch, err := proxybench.StartChild(proxybench.RoleFlag, "router", "-backend", backend, "-dir", dir)
	if err != nil {
		return out, err
	}
	out = append(out, runningPeer{peer{name: "slipway", addr: ch.Addr, stop: ch.Stop}, "internal/proxy + internal/edge (custom certificate), child process"})
	if bin := proxybench.NginxPath(); bin != "" {
		nd := dir + "/nginx"
		os.MkdirAll(nd, 0o755)
		p, err := startNginx(bin, nd, c, backend)
		if err != nil {
			return out, err
		}
		out = append(out, runningPeer{*p, proxybench.NginxVersion(bin) + fmt.Sprintf(" (worker_processes %d, upstream keepalive 256)", numCPU())})
	} else {
		fmt.Println("nginx not installed: its column is skipped (apt-get install -y nginx)")
	}
	if o.caddy != "" {
		cd := dir + "/caddy"
		os.MkdirAll(cd, 0o755)
		p, err := startCaddy(o.caddy, cd, c, backend)
		if err != nil {
			return out, err
		}
		out = append(out, runningPeer{*p, "caddy " + caddyVersion(o.caddy) + " (reverse_proxy, tls with the same files, automatic HTTPS off)"})
	} else {
		fmt.Println("no -caddy binary: Caddy's column is skipped")
	}
	return out, nil
}

func warm(ctx context.Context, addr string, c *certs) {
	cl := httpsClient(addr, c)
	proxybench.ClosedLoop(ctx, 16, 500*time.Millisecond, func() error { return get(cl) })
	cl.CloseIdleConnections()
}

const benchURL = "https://" + benchHost + "/"

// get sends one request and checks the answer.
func get(cl *http.Client) error {
	status, _, _, err := proxybench.Get(cl, benchURL)
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	return err
}

// fixedRate is the open loop: latency from each request's intended time.
func fixedRate(ctx context.Context, addr string, c *certs, rate int, d time.Duration) ([]time.Duration, int) {
	cl := httpsClient(addr, c)
	defer cl.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	proxybench.OpenLoop(ctx, rate, d, func(_ int, intended time.Time) {
		err := get(cl)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs++
			return
		}
		lat = append(lat, time.Since(intended))
	})
	return lat, errs
}

// saturate is the closed loop on keep-alive connections.
func saturate(ctx context.Context, addr string, c *certs, conns int, d time.Duration) (int, int) {
	cl := httpsClient(addr, c)
	defer cl.CloseIdleConnections()
	lat, errs := proxybench.ClosedLoop(ctx, conns, d, func() error { return get(cl) })
	return len(lat), errs
}

// handshakes counts full TLS handshakes (no resumption: no session cache)
// completed per second by conns clients, each connection closed at once.
func handshakes(ctx context.Context, addr string, c *certs, conns int, d time.Duration) (int, int) {
	cfg := &tls.Config{RootCAs: c.pool, ServerName: benchHost, NextProtos: []string{"http/1.1"}}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	lat, errs := proxybench.ClosedLoop(ctx, conns, d, func() error {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	return len(lat), errs
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func medianDur(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func report(o options, peers []runningPeer, res map[string]*result) {
	fmt.Printf("\nFixed rate: %d req/s, open loop (latency from the intended send time); saturation: %d keep-alive connections, closed loop; handshakes: %d clients, full TLS handshakes, each connection closed at once. %s per target and load in %d interleaved rounds.\n",
		o.rate, o.conns, o.hsConns, o.duration, o.rounds)
	fmt.Printf("%-8s %9s %9s %12s %7s | %10s %15s %6s | %12s %15s %6s\n", "target", "p50", "p99", "p99 (median", "errors", "req/s", "rounds' req/s", "errors", "handshakes/s", "rounds'", "errors")
	fmt.Printf("%-8s %9s %9s %12s %7s | %10s %15s %6s | %12s %15s %6s\n", "", "", "", "of rounds)", "", "", "", "", "", "", "")
	for _, p := range peers {
		r := res[p.name]
		st := proxybench.Summarise(r.fixedLat)
		fmt.Printf("%-8s %9s %9s %12s %7d | %10.0f %15s %6d | %12.0f %15s %6d\n", p.name, proxybench.Ms(st.P50), proxybench.Ms(st.P99), proxybench.Ms(medianDur(r.fixedP99s)), r.fixedErrs,
			float64(r.satReqs)/r.satTime.Seconds(), span(r.satRounds), r.satErrs, float64(r.hsCount)/r.hsTime.Seconds(), span(r.hsRounds), r.hsErrs)
	}
	s := res["slipway"]
	fmt.Printf("\n%-40s %10s %10s %8s %8s  %s\n", "metric", "slipway", "peer", "ratio", "goal", "verdict")
	if n := res["nginx"]; n != nil {
		verdict(medianDur(s.fixedP99s).Seconds(), medianDur(n.fixedP99s).Seconds(), "fixed-rate p99 (median of rounds) vs nginx", 1.2, true, true)
		verdict(float64(s.satReqs)/s.satTime.Seconds(), float64(n.satReqs)/n.satTime.Seconds(), "saturation req/s vs nginx", 0, false, false)
		verdict(float64(s.hsCount)/s.hsTime.Seconds(), float64(n.hsCount)/n.hsTime.Seconds(), "handshakes/s vs nginx", 0, false, false)
	}
	if cd := res["caddy"]; cd != nil {
		verdict(float64(s.satReqs)/s.satTime.Seconds(), float64(cd.satReqs)/cd.satTime.Seconds(), "saturation req/s vs caddy", 0.8, false, false)
		verdict(float64(s.hsCount)/s.hsTime.Seconds(), float64(cd.hsCount)/cd.hsTime.Seconds(), "new TLS handshakes/s vs caddy", 0.8, false, false)
		verdict(medianDur(s.fixedP99s).Seconds(), medianDur(cd.fixedP99s).Seconds(), "fixed-rate p99 (median of rounds) vs caddy", 0, true, true)
	}
}

// verdict prints one ratio; goal 0 is information only. lowerBetter goals
// are a maximum, the others a minimum.
func verdict(ours, peer float64, what string, goal float64, lowerBetter, isTime bool) {
	ratio := ours / peer
	f := func(v float64) string {
		if isTime {
			return proxybench.Ms(time.Duration(v * float64(time.Second)))
		}
		return fmt.Sprintf("%.0f", v)
	}
	g, v := "-", "info"
	if goal > 0 {
		if lowerBetter {
			g = fmt.Sprintf("<=%.1fx", goal)
			v = pass(ratio <= goal)
		} else {
			g = fmt.Sprintf(">=%.1fx", goal)
			v = pass(ratio >= goal)
		}
	}
	fmt.Printf("%-40s %10s %10s %7.2fx %8s  %s\n", what, f(ours), f(peer), ratio, g, v)
}

func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func span(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f-%.0f", slices.Min(xs), slices.Max(xs))
}
