// Package process is Slipway's embedded default runtime: it runs a release's
// image as plain host processes, without containers.
//
// The image is fetched by digest (from an OCI layout directory or a
// registry) and its layers are unpacked once per digest under
// <dataDir>/images/sha256-<hex>/rootfs. An instance is the image's
// entrypoint and cmd run as a host process, as the user running Slipway:
//
//   - working directory: the image's WorkingDir inside the root filesystem;
//   - argv[0]: an absolute path runs the root filesystem's copy if the image
//     has one, else the host's; a bare name is looked up along PATH;
//   - PATH: the image's PATH entries mapped into the root filesystem, then the
//     host's PATH. This is the point of the runtime: the image brings the
//     application's files, the host brings interpreters the image lacks, so a
//     Node.js app built on scratch runs with `node` from the host;
//   - environment: the image's, then the spec's, then PORT, HOST=127.0.0.1
//     and SLIPWAY_DATA_DIR=<dataDir>/data/<DataKey> (not set when DataKey is
//     empty). Nothing else of the host's environment is inherited. Env is
//     passed in the environment, never on a command line, and is never
//     written to disk by the driver.
//
// There is no isolation (Capabilities.Isolation is "none"): no chroot, so
// absolute paths inside scripts and shebangs refer to the host's files
// (Slipway's own entrypoint-script wrapper is the exception: its script path
// is mapped into the root filesystem); no user, network or resource
// separation. The root filesystem is shared by every instance of a digest:
// apps should write to SLIPWAY_DATA_DIR or a temporary directory.
//
// Ports: the driver picks a free port on 127.0.0.1 for each instance and
// passes it in PORT, with HOST=127.0.0.1; Instance.Addr is 127.0.0.1:<port>.
// Spec.Port is informative only here, because host processes share one port
// space and two instances of a release must not collide.
//
// Each instance runs in its own process group, with stdin from /dev/null and
// stdout and stderr appended to <dataDir>/instances/<id>.log, which is capped
// in size (see WithLogLimit). Its record, <dataDir>/instances/<id>.json,
// holds the labels, address and the pid with the process's start time (to
// tell a reused pid apart), so a new Driver on the same data directory, after
// `slipway serve` restarts, lists, follows, waits for and stops the instances
// the previous one started. Instances keep running while Slipway restarts:
// they are not tied to its lifetime.
//
// Under `slipway serve` as a systemd service, use KillMode=process (or
// mixed): the default control-group mode would kill every instance whenever
// the service restarts.
//
// Hooks (Run) run like instances, with the host's /bin/sh for Shell, in their
// own process group that is killed when the hook returns or its ctx ends.
// What the hook started that left the group (setsid) is killed too: hooks run
// in a cgroup v2 of their own where one can be created, else serve is a child
// subreaper and the kill walks /proc for the hook's descendants and for
// processes carrying its SLIPWAY_RUN_ID (see tree_linux.go).
// While it runs, a hook is recorded like an instance (labelled role=hook
// unless its labels name a role, with no address), so that one still
// running when Slipway dies is listed by the next Driver and stopped like
// an instance (SIGTERM, 5s, SIGKILL); Run removes the record when it returns.
//
// Stop sends SIGTERM to the instance's process group, waits up to the stop
// timeout, sends SIGKILL, and removes the record and the log: a stopped
// instance is gone from List. An instance that exits by itself stays in List
// as "exited" with its exit code (128+signal when killed by a signal, -1 when
// it exited while no Driver was watching it) until Stop removes it.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/slipway-dev/slipway/internal/driver"
)

// DefaultLogLimit is the size at which an instance's log is rotated; one
// rotated file is kept, so an instance's logs take at most twice this.
const DefaultLogLimit = 10 << 20

// killWait bounds how long Stop waits for a process to die after SIGKILL.
const killWait = 5 * time.Second

// pollInterval is how often the driver checks on processes it did not start.
const pollInterval = 100 * time.Millisecond

// Driver runs images as host processes. Make one with New.
type Driver struct {
	dir string
	o   options

	unpacks atomic.Int64 // images unpacked by this Driver, for tests
	logMu   sync.Mutex   // serialises log rotations
	records recordCache  // decoded instance records (recordcache.go)
	keeper  logKeeper    // pipes the instances' output to their logs (logpipe.go)

	mu          sync.Mutex
	children    map[string]*child      // instances this Driver started, by id
	inUse       map[string]int         // digest -> starts and hooks using its files
	unpackLocks map[string]*sync.Mutex // digest -> serialises its unpacking
	hasProcess  sync.Map               // digest -> bool, see HasProcess
	recentPorts map[int]time.Time      // ports handed out lately, not to reuse
}

// child is an instance this Driver started and reaps.
type child struct {
	done chan struct{} // closed once the process is reaped and its exit recorded
	code int           // valid after done
}

var (
	_ driver.Driver = (*Driver)(nil)
	_ driver.Waiter = (*Driver)(nil)
	_ driver.Pruner = (*Driver)(nil)
)

// Option configures New.
type Option func(*options)

type options struct {
	keychain  authn.Keychain
	transport http.RoundTripper
	hostPath  string
	logLimit  int64
}

// WithKeychain sets where registry credentials come from. The default is
// authn.DefaultKeychain (the Docker config file and its helpers).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sets the HTTP transport for registry pulls. The default is
// go-containerregistry's remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option { return func(o *options) { o.transport = t } }

// WithHostPath sets the host PATH appended to the image's. The default is
// Slipway's own $PATH when New runs, or /usr/local/bin:/usr/bin:/bin.
func WithHostPath(p string) Option { return func(o *options) { o.hostPath = p } }

// WithLogLimit sets the size in bytes at which an instance's log file is
// rotated (one old file is kept). The default is DefaultLogLimit (10 MiB).
func WithLogLimit(n int64) Option { return func(o *options) { o.logLimit = n } }

// New returns a driver keeping its images, instance records, logs and
// persistent data under dataDir, which it creates. Instances recorded there
// by an earlier Driver are adopted: listed, followed and stopped as if this
// one had started them.
func New(dataDir string, opts ...Option) (*Driver, error) {
	if !supported {
		return nil, errors.New("the process runtime needs a Unix system")
	}
	o := options{keychain: authn.DefaultKeychain, hostPath: os.Getenv("PATH"), logLimit: DefaultLogLimit}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("process runtime data dir: %w", err)
	}
	if strings.ContainsRune(dir, filepath.ListSeparator) {
		// Root filesystem paths go into PATH.
		return nil, fmt.Errorf("process runtime data dir %s: must not contain %q", dir, filepath.ListSeparator)
	}
	for _, sub := range []string{"images", "instances", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("process runtime data dir: %w", err)
		}
	}
	d := &Driver{
		dir:         dir,
		o:           o,
		children:    map[string]*child{},
		inUse:       map[string]int{},
		unpackLocks: map[string]*sync.Mutex{},
		recentPorts: map[int]time.Time{},
		keeper:      logKeeper{ctl: -1},
	}
	recs, err := d.listRecords()
	if err != nil {
		return nil, fmt.Errorf("process runtime: reading instance records: %w", err)
	}
	for _, r := range recs {
		if r.State == stateRunning {
			go d.watchAdopted(r)
		}
	}
	return d, nil
}

// Capabilities describes the process runtime.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "process", Isolation: "none", Wait: true, Prune: true}
}

var dataKeyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// dataDirFor creates and returns the persistent directory for a data key
// ("" means none).
func (d *Driver) dataDirFor(key string) (string, error) {
	if key == "" {
		return "", nil
	}
	if !dataKeyPattern.MatchString(key) {
		return "", fmt.Errorf("data key %q: want letters, digits, '.', '_' or '-'", key)
	}
	p := filepath.Join(d.dir, "data", key)
	if err := os.MkdirAll(p, 0o700); err != nil {
		return "", fmt.Errorf("data dir for %q: %w", key, err)
	}
	return p, nil
}

// freePort picks a free TCP port on 127.0.0.1 that this Driver has not handed
// out in the last minute.
func (d *Driver) freePort() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for p, t := range d.recentPorts {
		if now.Sub(t) > time.Minute {
			delete(d.recentPorts, p)
		}
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, taken := d.recentPorts[p]; !taken {
			d.recentPorts[p] = now
			return p, nil
		}
	}
	return 0, errors.New("finding a free port: none after 20 tries")
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Start fetches and unpacks the image if needed and starts one instance
// (see the package doc for its environment). It returns once the process
// has started.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Instance, error) {
	fail := func(err error) (driver.Instance, error) {
		return driver.Instance{}, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	u, release, err := d.acquire(ctx, spec.Image)
	if err != nil {
		return fail(err)
	}
	defer release()
	data, err := d.dataDirFor(spec.DataKey)
	if err != nil {
		return fail(err)
	}
	port, err := d.freePort()
	if err != nil {
		return fail(err)
	}
	own := map[string]string{"PORT": strconv.Itoa(port), "HOST": "127.0.0.1"}
	if data != "" {
		own["SLIPWAY_DATA_DIR"] = data
	}
	id := newID()
	name := spec.Name
	if name == "" {
		name = "instance-" + id
	}
	cmd, err := d.command(u, nil, spec.Env, own)
	if err != nil {
		return fail(err)
	}
	logf, err := os.OpenFile(d.logPath(id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(fmt.Errorf("creating the log file: %w", err))
	}
	defer logf.Close() // the child has its own descriptor
	// Output goes through the log pipe (see logpipe.go), which redacts and stamps it.
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("creating the output pipe: %w", err))
	}
	defer outR.Close()
	defer outW.Close()
	cmd.Stdout, cmd.Stderr = outW, outW

	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[driver.LabelManaged] = "true"
	stop := spec.StopTimeout
	if stop <= 0 {
		stop = driver.DefaultStopTimeout
	}

	// The record is written under the lock before the process can be
	// reaped, so its exit is always recorded over a complete record.
	openGate, abortGate, err := gateStart(cmd)
	if err != nil {
		return fail(err)
	}
	unlock, err := d.lockState()
	if err != nil {
		abortGate()
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		unlock()
		abortGate()
		os.Remove(d.logPath(id))
		return fail(fmt.Errorf("running %s: %w", cmd.Path, err))
	}
	pid := cmd.Process.Pid
	outW.Close() // the instance has its own
	ticks, _ := procStart(pid)
	rec := &record{
		ID:            id,
		Name:          name,
		Labels:        labels,
		Image:         spec.Image.Ref,
		Digest:        u.digest,
		DataKey:       spec.DataKey,
		Addr:          net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		PID:           pid,
		PGID:          pid,
		StartTicks:    ticks,
		StopTimeoutMS: stop.Milliseconds(),
		Started:       time.Now().UTC(),
		State:         stateRunning,
	}
	err = d.writeRecord(rec)
	unlock()
	// The output goes to the log keeper outside the state lock (the first
	// Start execs the keeper, slow on a loaded host, and every Start takes
	// that lock), before the gate opens: the instance cannot print anything
	// before it runs.
	if err == nil {
		if err = d.sendLog(id, outR, logf, spec.Secrets); err != nil {
			err = fmt.Errorf("piping its output: %w", err)
		}
	}
	outR.Close()
	if err == nil {
		err = openGate()
	} else {
		abortGate()
	}
	if err != nil {
		signalGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		d.removeRecord(id)
		os.Remove(d.logPath(id))
		return fail(fmt.Errorf("recording the instance: %w", err))
	}
	c := &child{done: make(chan struct{})}
	d.mu.Lock()
	d.children[id] = c
	d.mu.Unlock()
	go d.reap(id, cmd, c)
	return rec.instance(), nil
}

// command prepares (without starting) the image's process, or argv if
// given, in the image's root filesystem and working directory.
func (d *Driver) command(u *unpacked, argv []string, specEnv, own map[string]string) (*exec.Cmd, error) {
	if argv == nil {
		argv = append(append([]string{}, u.config.Entrypoint...), u.config.Cmd...)
	}
	if len(argv) == 0 {
		return nil, errors.New("the image has no entrypoint or cmd")
	}
	env := environ(u.rootfs, u.config.Env, specEnv, own, d.o.hostPath)
	cwd, err := workDir(u.rootfs, u.config.WorkingDir)
	if err != nil {
		return nil, err
	}
	argv = mapEntrypointScript(argv, u.rootfs)
	prog, err := resolveArgv0(argv[0], u.rootfs, cwd, lookupEnv(env, "PATH"))
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:        prog,
		Args:        argv,
		Env:         env,
		Dir:         cwd,
		SysProcAttr: groupAttr(),
	}
	return cmd, nil
}

// reap waits for a child, records its exit and rotates its log meanwhile.
func (d *Driver) reap(id string, cmd *exec.Cmd, c *child) {
	waited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(waited)
	}()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-waited:
			running = false
		case <-tick.C:
			d.rotateLog(id)
		}
	}
	c.code = exitStatus(cmd.ProcessState)
	d.recordExit(id, c.code, true)
	close(c.done)
}

// watchAdopted follows an instance an earlier Driver started: it rotates the
// log and records the exit (code unknown: -1) once the process is gone.
func (d *Driver) watchAdopted(r *record) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range tick.C {
		if !r.alive() {
			d.recordExit(r.ID, -1, false)
			return
		}
		if _, err := os.Stat(d.recordPath(r.ID)); err != nil {
			return // stopped
		}
		d.rotateLog(r.ID)
	}
}

// recordExit marks a record exited. The reaper knows the code and always
// writes it; others only mark a record still "running".
func (d *Driver) recordExit(id string, code int, known bool) {
	unlock, err := d.lockState()
	if err != nil {
		return
	}
	defer unlock()
	r, err := d.readRecord(id)
	if err != nil {
		return // stopped (record removed) meanwhile
	}
	if !known && r.State != stateRunning {
		return
	}
	r.State, r.ExitCode = stateExited, code
	d.writeRecord(r)
}

// current returns the record with State brought up to date: a "running"
// record whose process is gone reads as exited (code -1 unless known).
func (d *Driver) current(id string) (*record, error) {
	r, err := d.readRecord(id)
	if err != nil {
		return nil, err
	}
	if r.State == stateRunning && !r.alive() {
		d.mu.Lock()
		c := d.children[id]
		d.mu.Unlock()
		r.State, r.ExitCode = stateExited, -1
		if c != nil {
			<-c.done // a zombie or just reaped: its code is moments away
			r.ExitCode = c.code
		}
	}
	return r, nil
}

// List returns the instances recorded in the data directory (by this or an
// earlier Driver) whose labels include match, oldest first.
func (d *Driver) List(ctx context.Context, match map[string]string) ([]driver.Instance, error) {
	recs, err := d.listRecords()
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	var out []driver.Instance
	for _, r := range recs {
		if !driver.Matches(r.Labels, match) {
			continue
		}
		if cur, err := d.current(r.ID); err == nil {
			r = cur
		} else if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		out = append(out, r.instance())
	}
	return out, nil
}

// exited returns a channel closed when the instance's process has exited,
// and a function giving its exit code after that (-1 when unknown).
func (d *Driver) exited(ctx context.Context, r *record) (<-chan struct{}, func() int) {
	d.mu.Lock()
	c := d.children[r.ID]
	d.mu.Unlock()
	if c != nil {
		return c.done, func() int { return c.code }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(pollInterval)
		defer t.Stop()
		for r.alive() {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done, func() int {
		// The process's own reaper (another Driver in this process, say)
		// may be about to record the code.
		for range 5 {
			if cur, err := d.readRecord(r.ID); err == nil && cur.State == stateExited {
				return cur.ExitCode
			}
			time.Sleep(pollInterval)
		}
		return -1
	}
}

// Stop stops an instance: SIGTERM to its process group, up to its stop
// timeout (cut short if ctx ends), SIGKILL, then its record and log are
// removed. Stopping an unknown or already stopped instance is not an error.
func (d *Driver) Stop(ctx context.Context, id string) error {
	r, err := d.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	if r.State == stateRunning && r.alive() {
		wctx, cancel := context.WithCancel(context.Background())
		done, _ := d.exited(wctx, r)
		if err := signalGroup(r.PGID, syscall.SIGTERM); err != nil {
			cancel()
			return fmt.Errorf("stopping %s: sending SIGTERM: %w", id, err)
		}
		grace := time.NewTimer(time.Duration(r.StopTimeoutMS) * time.Millisecond)
		select {
		case <-done:
		case <-grace.C:
		case <-ctx.Done():
		}
		grace.Stop()
		select {
		case <-done:
		default:
			signalGroup(r.PGID, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(killWait):
				cancel()
				return fmt.Errorf("stopping %s: pid %d still alive %s after SIGKILL", id, r.PID, killWait)
			}
		}
		cancel()
	}
	// Whatever the main process left behind in its group goes too. A
	// group id stays allocated while the group has members, so a group
	// with this id is ours, unless a new process got the number after the
	// whole group was gone and leads a group of its own: then that leader
	// is alive with another start time.
	if ticks, ok := procStart(r.PGID); (!ok || r.StartTicks == 0 || ticks == r.StartTicks) && groupExists(r.PGID) {
		signalGroup(r.PGID, syscall.SIGKILL)
	}
	if r.Cgroup != "" || r.Marker != "" {
		// A hook an earlier serve left: what it started outside its group too.
		(&tree{root: 0, cgroup: r.Cgroup, marker: r.Marker}).kill()
	}
	d.mu.Lock()
	c := d.children[id]
	delete(d.children, id)
	d.mu.Unlock()
	if c != nil {
		<-c.done // its exit is recorded; Wait callers have their code
	}

	unlock, err := d.lockState()
	if err != nil {
		return fmt.Errorf("stopping %s: %w", id, err)
	}
	defer unlock()
	if err := os.Remove(d.recordPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stopping %s: removing its record: %w", id, err)
	}
	os.Remove(d.logPath(id))
	os.Remove(d.logPath(id) + ".1")
	return nil
}

// Wait blocks until the instance exits and returns its exit code (see the
// package doc), or ErrNotFound for an instance that is not recorded.
func (d *Driver) Wait(ctx context.Context, id string) (int, error) {
	r, err := d.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, fmt.Errorf("waiting for %s: %w", id, driver.ErrNotFound)
	}
	if err != nil {
		return -1, fmt.Errorf("waiting for %s: %w", id, err)
	}
	if r.State == stateExited {
		return r.ExitCode, nil
	}
	done, code := d.exited(ctx, r)
	select {
	case <-done:
		if err := ctx.Err(); err != nil {
			return -1, fmt.Errorf("waiting for %s: %w", id, err)
		}
		return code(), nil
	case <-ctx.Done():
		return -1, fmt.Errorf("waiting for %s: %w", id, ctx.Err())
	}
}
