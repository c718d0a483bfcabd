// Command tls measures Slipway's router serving HTTPS next to nginx and
// Caddy, all three fronting the same backend with the same certificate, on
// loopback; and (-mode idle) the router holding thousands of idle
// keep-alive connections while normal traffic goes on.
//
//	go run ./bench/tls -caddy /tmp/caddy/bin/caddy [-duration 6s]
//	go run ./bench/tls -mode idle [-idle 2000 -idle-timeout 5s]
//
// It prints tables and the ratios against the goals; a missed goal is
// reported, not an error. See README.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/edge"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

type options struct {
	role, backend, dir string
	mode               string
	caddy              string
	rate               int
	duration           time.Duration
	rounds             int
	conns              int
	hsConns            int
	body               int
	idle               int
	idleTimeout        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "", "internal: run as a child (backend|router|plainrouter)")
	flag.StringVar(&o.backend, "backend", "", "internal: backend address for the router children")
	flag.StringVar(&o.dir, "dir", "", "internal: the router child's directory (certificate, edge state)")
	flag.StringVar(&o.mode, "mode", "proxy", "proxy (slipway vs nginx vs caddy over TLS) or idle")
	flag.StringVar(&o.caddy, "caddy", "", "caddy binary (go install github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9 into a temp dir); without it Caddy's column is skipped")
	flag.IntVar(&o.rate, "rate", 1000, "requests per second in the fixed-rate run")
	flag.DurationVar(&o.duration, "duration", 6*time.Second, "measured time per target and load, split into -rounds")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (evens out a shared machine's noise)")
	flag.IntVar(&o.conns, "conns", 64, "connections in the saturation run")
	flag.IntVar(&o.hsConns, "handshake-conns", 8, "concurrent clients in the handshake run")
	flag.IntVar(&o.body, "body", 128, "response body size in bytes")
	flag.IntVar(&o.idle, "idle", 2000, "idle keep-alive connections in -mode idle")
	flag.DurationVar(&o.idleTimeout, "idle-timeout", 5*time.Second, "the router's IdleTimeout in -mode idle")
	flag.Parse()

	var err error
	switch o.role {
	case "backend":
		err = proxybench.Serve(proxybench.Backend("1", o.body, 0))
	case "router":
		err = serveTLSRouter(o)
	case "plainrouter":
		err = servePlainRouter(o)
	case "":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		switch o.mode {
		case "proxy":
			err = benchProxy(ctx, o)
		case "idle":
			err = benchIdle(ctx, o)
		default:
			err = fmt.Errorf("unknown -mode %q", o.mode)
		}
		stop()
	default:
		err = fmt.Errorf("unknown -role %q", o.role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tls:", err)
		os.Exit(1)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// deployBackend gives a router one service for benchHost on the backend.
func deployBackend(r *proxy.Router, backend string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.Deploy(ctx, proxy.DeployRequest{Service: "bench/web", Hosts: []string{benchHost}, Targets: []string{backend}, Health: proxy.HealthCheck{Path: "/"}})
	return err
}

// serveTLSRouter is the Slipway side: the product's path, in its own
// process like nginx and Caddy: router, edge (the store's own certificate,
// as `tls: {cert, key}` configures it), hardened HTTPS listener.
func serveTLSRouter(o options) error {
	r, err := proxy.NewRouter("", proxy.WithLogger(quiet))
	if err != nil {
		return err
	}
	if err := deployBackend(r, o.backend); err != nil {
		return err
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	m, err := edge.New(context.Background(), edge.Options{Dir: filepath.Join(o.dir, "edge"), Router: r,
		HTTPAddr: httpLn.Addr().String(), HTTPSAddr: tlsLn.Addr().String(), CA: "https://127.0.0.1:1/dir", SkipDNSCheck: true, Log: quiet})
	if err != nil {
		return err
	}
	certPEM, err1 := os.ReadFile(filepath.Join(o.dir, "cert.pem"))
	keyPEM, err2 := os.ReadFile(filepath.Join(o.dir, "key.pem"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if err := m.Configure(context.Background(), "bench", []string{benchHost}, proxy.Site{TLS: "custom", CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
		return err
	}
	srv := proxy.NewHardenedServer(m.HTTPSHandler(r), proxy.Limits{})
	srv.TLSConfig = m.TLSConfig()
	fmt.Printf("LISTEN %s\n", tlsLn.Addr())
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		srv.Close()
	}()
	err = srv.ServeTLS(proxy.LimitListener(tlsLn, proxy.Limits{}), "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// servePlainRouter is the router on plain HTTP with the idle timeout under test.
func servePlainRouter(o options) error {
	r, err := proxy.NewRouter("", proxy.WithLogger(quiet))
	if err != nil {
		return err
	}
	if err := deployBackend(r, o.backend); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	lim := proxy.Limits{IdleTimeout: o.idleTimeout}
	srv := proxy.NewHardenedServer(r, lim)
	// As serve runs its plain listener: the front answers the proxied
	// requests and hands the rest to srv.
	front := proxy.NewFront(r, lim, nil)
	fmt.Printf("LISTEN %s\n", ln.Addr())
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
		<-ch
		srv.Close()
		front.Wait(context.Background())
	}()
	err = srv.Serve(front.Listener(proxy.LimitListener(ln, lim)))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// startBackend runs the shared app.
func startBackend(o options) (*proxybench.Child, error) {
	b, err := proxybench.StartChild(proxybench.RoleFlag, "backend", "-body", fmt.Sprint(o.body))
	if err != nil {
		return nil, err
	}
	if err := proxybench.WaitHealthy(b.Addr, "/", 10*time.Second); err != nil {
		b.Kill()
		return nil, err
	}
	return b, nil
}

// httpsClient speaks HTTP/1.1 over TLS to addr whatever the URL's host,
// trusting the bench CA, with keep-alive.
func httpsClient(addr string, c *certs) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		TLSClientConfig: &tls.Config{RootCAs: c.pool, ServerName: benchHost},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 for all three
		// A bounded pool, as real clients and load balancers have: under
		// overload requests queue here (and the open loop's latency shows
		// it) instead of opening a connection (a full handshake) each.
		MaxConnsPerHost: 128, MaxIdleConnsPerHost: 128, DisableCompression: true,
	}}
}

func numCPU() int { return runtime.NumCPU() }

func lookPath(name string) string {
	p, _ := exec.LookPath(name)
	return p
}
