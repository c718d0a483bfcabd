// Package server is `slipway serve`: the long-running process on a host that
// owns the router, the runtime driver, the image store and the release state,
// with a local API (a unix socket) that the CLI talks to.
package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
	"github.com/slipway-dev/slipway/internal/driver/process"
	"github.com/slipway-dev/slipway/internal/driver/swarm"
	"github.com/slipway-dev/slipway/internal/edge"
	"github.com/slipway-dev/slipway/internal/handoff"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/state"
)

// Options configure a Server.
type Options struct {
	// DataDir holds state.db, router.json, images/, the API socket and the runtime's files.
	DataDir string
	// HTTPAddr is where the router listens; default 127.0.0.1:8080.
	HTTPAddr string
	// Driver is "process" (default), "docker" or "swarm".
	Driver string
	// StopOnExit stops every instance when the server exits (slipway up);
	// otherwise instances keep serving and are recovered by the next start.
	StopOnExit bool
	// Log receives the server's own log lines; default stderr.
	Log io.Writer
	// RegistryAddr, when set, serves the embedded image store read-only over
	// the OCI distribution API (/v2/) on this TCP address, for docker pull.
	RegistryAddr string
	// Quiet logs warnings only (slipway up prints deploy progress itself).
	Quiet bool
	// APIAddr, when set, also serves the API over TCP to bearer-token holders
	// (plain HTTP only on loopback unless APIInsecure; HTTPS with APICert and APIKey).
	APIAddr     string
	APICert     string
	APIKey      string
	APIInsecure bool
	// Edge configures the router's request path (see EdgeOptions).
	Edge EdgeOptions
	// Getenv reads SLIPWAY_MASTER_KEY and the like; default os.Getenv.
	Getenv func(string) string
	// Targets, when set, replace Driver: each store runs on its region's
	// target (config targets:); Regions maps store ids to their region.
	Targets map[string]*config.Target
	Regions map[string]string
	// TLS configures HTTPS, ACME and listener hardening (tls.go).
	TLS TLSOptions
	// Listeners hands serve's sockets over across restarts and upgrades
	// (systemd socket activation, SIGHUP/SIGUSR2); nil listens afresh.
	Listeners *handoff.Listeners
	// MinFreeBytes is the free space a job needs on DataDir's file system
	// (0: pipeline.DefaultMinFree; < 0: no check).
	MinFreeBytes int64
	// ConfigDir and ConfigFile locate the config serve deploys with (loaded
	// for each job); default: the parent of DataDir, the repository of <repo>/.slipway.
	ConfigDir  string
	ConfigFile string
	// Limits bound what a deploy request may ask for (instances, hosts, registries).
	Limits api.Limits
	// DeployJobs is how many stores of one job deploy at once; default DefaultDeployJobs.
	DeployJobs int
}

// Server is a running control plane.
type Server struct {
	o        Options
	log      *slog.Logger
	State    *state.DB
	Router   *proxy.Router
	Driver   driver.Driver
	Images   *registry.Layout
	Deployer *pipeline.Deployer
	TLSEdge  *edge.Manager

	// Tokens and Audit keep API tokens and the audit trail in the state db.
	Tokens *auth.Tokens
	Audit  *auth.Audit

	lockFile  *os.File
	handedOff bool // the sockets and the state went to a new serve
	httpLn    net.Listener
	httpsLn   net.Listener
	apiLn     net.Listener
	remoteLn  net.Listener
	apiScheme string
	regLn     net.Listener
	extra     []*http.Server
	gate      *auth.Gate
	routes    []extraRoute
	mu        sync.Mutex
	closers   []io.Closer // files the router writes (the access log)
	jobs      JobRecorder // records each store of POST /v1/deploys (RecordJobs)
}

// SocketPath is where the API listens for a data dir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, "slipway.sock") }

// ErrRunning means another server holds the data dir.
var ErrRunning = errors.New("another slipway serve is running on this data dir")

// New opens everything the server needs and recovers what a previous run left.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.Driver == "" {
		o.Driver = "process"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if err := secureDataDir(o.DataDir); err != nil {
		return nil, err
	}
	if err := compose.IgnoreDir(o.DataDir); err != nil {
		return nil, err
	}
	level := slog.LevelInfo
	if o.Quiet {
		level = slog.LevelWarn
	}
	s := &Server{o: o, log: slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: level}))}
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()
	// One server per data dir: a second would fight over instances and state.
	lf, err := os.OpenFile(filepath.Join(o.DataDir, "serve.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	s.lockFile = lf
	if err := s.lockDataDir(lf); err != nil {
		return nil, err
	}
	if s.State, err = state.Open(ctx, filepath.Join(o.DataDir, "state.db")); err != nil {
		return nil, err
	}
	if err := s.openSealer(ctx); err != nil {
		return nil, err
	}
	if err := s.openAuth(ctx); err != nil {
		return nil, err
	}
	edgeOpts, err := s.edgeRouterOptions()
	if err != nil {
		return nil, err
	}
	if s.Router, err = proxy.NewRouter(filepath.Join(o.DataDir, "router.json"), append([]proxy.Option{proxy.WithLogger(s.log), proxy.WithHealthMonitor(5 * time.Second)}, edgeOpts...)...); err != nil {
		return nil, err
	}
	s.mountMetrics()
	if s.Images, err = registry.OpenLayout(filepath.Join(o.DataDir, "images")); err != nil {
		return nil, err
	}
	switch {
	case len(o.Targets) > 0:
		s.Driver, err = s.targetsDriver()
	case o.Driver == "process":
		s.Driver, err = process.New(filepath.Join(o.DataDir, "runtime"))
	case o.Driver == "docker":
		// Scope to this data dir: another serve (or slipway up) on the same
		// engine must never list, adopt or stop these containers.
		sum := sha256.Sum256([]byte(o.DataDir))
		s.Driver, err = docker.New(ctx, docker.WithLabels(map[string]string{"dev.slipway.datadir": hex.EncodeToString(sum[:8])}),
			docker.WithLogDir(filepath.Join(o.DataDir, "docker-logs")))
	case o.Driver == "swarm":
		// On a swarm manager (DOCKER_HOST); the same data-dir scope as docker.
		sum := sha256.Sum256([]byte(o.DataDir))
		s.Driver, err = swarm.New(ctx, swarm.WithLabels(map[string]string{"dev.slipway.datadir": hex.EncodeToString(sum[:8])}))
	default:
		err = fmt.Errorf("unknown driver %q: use process, docker or swarm", o.Driver)
	}
	if err != nil {
		return nil, err
	}
	s.Deployer = &pipeline.Deployer{Driver: s.Driver, Router: s.Router, State: s.State, DataDir: o.DataDir, LayoutDir: s.Images.Dir(), Secrets: s.storedSecrets, Log: s.log, MinFree: o.MinFreeBytes}
	s.Deployer.Unpacker = s.staticUnpacker()
	s.Deployer.ReadImage = s.readImage
	if err := s.recover(ctx); err != nil {
		return nil, fmt.Errorf("recovering: %w", err)
	}
	// What the last serve supervised is supervised again: crashed (or, after a
	// reboot, vanished) instances of the live releases are restarted.
	if err := s.Deployer.Restore(ctx, s.log); err != nil {
		return nil, fmt.Errorf("restoring supervision: %w", err)
	}
	// Everything above may have created files (router.json, images/, .gitignore).
	if err := secureDataDir(o.DataDir); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// recover marks deploys that a dead process left unfinished, and stops
// instances that no route points at (a crash between start and swap, or
// between swap and stopping the old ones).
func (s *Server) recover(ctx context.Context) error {
	routed := map[string]bool{}
	for _, svc := range s.Router.Services() {
		for _, t := range svc.Targets {
			routed[t.Address] = true
		}
	}
	insts, err := s.Driver.List(ctx, map[string]string{driver.LabelManaged: "true"})
	if err != nil {
		return err
	}
	// release -> apps of it that serve a route
	servingApps := map[string]map[string]bool{}
	for _, in := range insts {
		if in.Labels[driver.LabelRole] == "web" && routed[in.Addr] && in.State == "running" {
			rel := in.Labels[driver.LabelRelease]
			if servingApps[rel] == nil {
				servingApps[rel] = map[string]bool{}
			}
			servingApps[rel][in.Labels[driver.LabelApp]] = true
		}
	}
	unfinished, err := s.State.Unfinished(ctx)
	if err != nil {
		return err
	}
	for _, r := range unfinished {
		r.FinishedAt = time.Now()
		if len(servingApps[r.ID]) > 0 {
			// The swap happened before the deploying process died: this release
			// serves. The router swaps every app of a store at once (DeployAll),
			// so if one app serves, all do.
			r.Stage = pipeline.StagePostDeploy
			r.Error = "interrupted after the cutover: post-deploy and verify did not run"
			if err := s.State.Promote(ctx, r); err != nil {
				return err
			}
			s.log.Warn("release was interrupted after its cutover; it is live", "release", r.ID)
			continue
		}
		r.Error = "the process deploying it stopped before the cutover"
		if err := s.State.Interrupt(ctx, r); err != nil {
			return err
		}
		s.log.Warn("release was interrupted before its cutover", "release", r.ID, "stage", r.Stage)
	}
	cut, err := s.State.CutOver(ctx)
	if err != nil {
		return err
	}
	for _, r := range cut {
		r.FinishedAt = time.Now()
		r.Stage = pipeline.StagePostDeploy
		for _, st := range r.Stages {
			if st.Name == pipeline.StagePostDeploy {
				r.Stage = pipeline.StageVerify
			}
		}
		r.Error = "interrupted after the cutover: " + r.Stage + " did not finish"
		if err := s.State.Finish(ctx, r); err != nil {
			return err
		}
		s.log.Warn("release was interrupted after its cutover; it is live", "release", r.ID, "stage", r.Stage)
	}
	for _, in := range insts {
		if in.Labels[driver.LabelRole] == "web" && routed[in.Addr] && in.State == "running" {
			continue
		}
		// A process type (worker) of a release whose web serves is part of
		// the live release: it has no route of its own.
		if in.Labels[driver.LabelRole] == pipeline.RoleProcess && in.State == "running" && len(servingApps[in.Labels[driver.LabelRelease]]) > 0 {
			continue
		}
		s.log.Info("stopping an instance no route points at", "instance", in.Name, "release", in.Labels[driver.LabelRelease])
		if err := s.Driver.Stop(ctx, in.ID); err != nil {
			s.log.Warn("stopping orphan", "instance", in.Name, "error", err)
		}
	}
	return nil
}

// Listen binds the router and API listeners (so callers know the addresses before Serve).
func (s *Server) Listen() error {
	var err error
	if s.httpLn, err = s.listen("http", "tcp", s.o.HTTPAddr); err != nil {
		return fmt.Errorf("router listen on %s: %w", s.o.HTTPAddr, err)
	}
	if err := s.listenHTTPS(); err != nil {
		return err
	}
	if err := s.openEdge(context.Background()); err != nil {
		return err
	}
	sock := SocketPath(s.o.DataDir)
	// A socket file not handed over is stale: we hold serve.lock.
	if s.apiLn, err = s.listen("api", "unix", sock); err != nil {
		return fmt.Errorf("api listen on %s: %w", sock, err)
	}
	os.Chmod(sock, 0o600)
	if s.o.APIAddr != "" {
		if err := s.listenAPI(); err != nil {
			return err
		}
	}
	if s.o.RegistryAddr != "" {
		if s.regLn, err = s.listen("registry", "tcp", s.o.RegistryAddr); err != nil {
			return fmt.Errorf("registry listen on %s: %w", s.o.RegistryAddr, err)
		}
	}
	return nil
}

// RegistryAddr is the /v2/ listener's address, "" when not serving one.
func (s *Server) RegistryAddr() string {
	if s.regLn == nil {
		return ""
	}
	return s.regLn.Addr().String()
}

// HTTPAddr is the router's listen address once Listen returned.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// ServeHostPort adds a loopback listener that sends every request to host, so a
// store answers on a plain http://127.0.0.1:PORT/ URL too (name resolution of
// *.localhost varies between clients).
func (s *Server) ServeHostPort(addr, host string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Host = host
		s.Router.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 30 * time.Second}
	s.mu.Lock()
	s.extra = append(s.extra, srv)
	s.mu.Unlock()
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}

// Serve runs until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	if s.httpLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	mux := s.apiHandler()
	api := &http.Server{Handler: s.gate.Local(mux), ConnContext: auth.PeerConnContext}
	errc := make(chan error, 4)
	stopRouter := s.serveRouter(errc)
	go func() { errc <- api.Serve(s.apiLn) }()
	if s.remoteLn != nil {
		remote := s.remoteServer(mux)
		s.mu.Lock()
		s.extra = append(s.extra, remote)
		s.mu.Unlock()
		go func() { errc <- remote.Serve(s.remoteLn) }()
		s.log.Info("serving the API to token holders", "url", s.APIURL())
	}
	if err := s.serveMetrics(); err != nil {
		return err
	}
	if s.regLn != nil {
		reg := &http.Server{Handler: s.RegistryHandler(), ReadHeaderTimeout: 30 * time.Second}
		s.mu.Lock()
		s.extra = append(s.extra, reg)
		s.mu.Unlock()
		go reg.Serve(s.regLn)
	}
	supCtx, stopSup := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() { s.Deployer.Supervise(supCtx, s.log, time.Second); close(supDone) }()
	s.log.Info("serving", "router", s.HTTPAddr(), "api", SocketPath(s.o.DataDir), "driver", s.Driver.Capabilities().Name)
	s.announceReady()
	// stopControl stops all but the router: the supervisor first, so it does
	// not restart what shutdown stops; then the API and the other listeners.
	stopControl := func(ctx context.Context) {
		stopSup()
		<-supDone
		s.mu.Lock()
		extra := append([]*http.Server{api}, s.extra...)
		s.mu.Unlock()
		quiesce(s.apiLn, s.remoteLn, s.regLn)
		shutdownAll(ctx, extra...)
	}
	upgrade, stopSignals := upgradeSignals(s.o.Listeners != nil)
	defer stopSignals()
	var err error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case err = <-errc:
			break wait
		case <-upgrade:
			if s.handOff(stopControl) {
				break wait
			}
		}
	}
	shctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.handedOff {
		stopControl(shctx)
	}
	// In-flight requests finish; with a hand-off the new serve already accepts.
	quiesce(s.httpLn, s.httpsLn)
	stopRouter(shctx)
	if s.o.StopOnExit && !s.handedOff {
		s.stopEverything(shctx)
	}
	s.closeAll()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *Server) stopEverything(ctx context.Context) {
	insts, err := s.Driver.List(ctx, map[string]string{driver.LabelManaged: "true"})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); s.Driver.Stop(ctx, in.ID) }()
	}
	wg.Wait()
}

func (s *Server) closeAll() {
	if s.TLSEdge != nil {
		s.TLSEdge.Close()
	}
	if s.httpsLn != nil {
		s.httpsLn.Close()
	}
	if s.Router != nil {
		s.Router.Close()
	}
	for _, c := range s.closers {
		c.Close()
	}
	if s.State != nil {
		s.State.Close()
	}
	if c, ok := s.Driver.(io.Closer); ok {
		c.Close()
	}
	if s.apiLn != nil && !s.handedOff {
		os.Remove(SocketPath(s.o.DataDir))
	}
	if s.lockFile != nil {
		s.lockFile.Close()
	}
}
