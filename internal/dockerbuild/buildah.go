package dockerbuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Environment that configures the buildah builder.
const (
	// BuildahEnv names the buildah binary; default buildah on PATH.
	BuildahEnv = "SLIPWAY_BUILDAH"
	// BuildahDriverEnv sets buildah's storage driver; default overlay,
	// vfs when the storage root is itself on overlayfs (a container).
	BuildahDriverEnv = "SLIPWAY_BUILDAH_STORAGE_DRIVER"
)

// overlayfsMagic is statfs's f_type of an overlay filesystem.
const overlayfsMagic = 0x794c7630

// Buildah builds with Debian's buildah (`buildah bud`), for machines with
// no Docker engine: chroot isolation (no OCI runtime, no network
// namespace), its own storage under Slipway's state dir (never
// /var/lib/containers/storage), the layer cache kept there between builds
// (--layers).
type Buildah struct {
	bin, dir, root, runRoot, driver string
	secretsIn                       string // where secret files go; default /dev/shm (tests set it)
}

// Builder is what builds a Dockerfile: the Docker engine or buildah.
type Builder interface {
	// Name says which, for the job log.
	Name() string
	// BaseIDs returns the image ID of each FROM image (see Engine.BaseIDs).
	BaseIDs(ctx context.Context, bases []string) ([]string, error)
	// Build runs the build and returns the image's ID.
	Build(ctx context.Context, r Request) (string, error)
	// Export writes the built image to a file under dir; remove deletes it.
	Export(ctx context.Context, id, dir string) (img v1.Image, remove func(), err error)
	Close() error
}

var (
	_ Builder = (*Engine)(nil)
	_ Builder = (*Buildah)(nil)
)

// Name implements Builder.
func (e *Engine) Name() string { return "the Docker engine" }

// FindBuildah returns the buildah binary (BuildahEnv, else on PATH).
func FindBuildah() (string, error) {
	bin := os.Getenv(BuildahEnv)
	if bin == "" {
		bin = "buildah"
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("buildah is not installed (apt-get install buildah): %w", err)
	}
	return p, nil
}

// NewBuildah returns a builder keeping its storage under dir (created 0700).
func NewBuildah(bin, dir string) (*Buildah, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b := &Buildah{bin: bin, dir: dir, root: filepath.Join(dir, "storage")}
	for _, d := range []string{b.root, b.tmp()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("buildah storage: %w", err)
		}
	}
	b.runRoot = runRoot(dir)
	b.driver = os.Getenv(BuildahDriverEnv)
	if b.driver == "" {
		b.driver = "overlay"
		var st syscall.Statfs_t
		if syscall.Statfs(b.root, &st) == nil && st.Type == overlayfsMagic {
			b.driver = "vfs" // overlay cannot stack on overlay
		}
	}
	return b, nil
}

// runRoot is buildah's state dir (locks, mount counts): on /run, a tmpfs
// that a reboot empties along with the mounts it counts; else beside the
// storage.
func runRoot(dir string) string {
	h := sha256.Sum256([]byte(dir))
	p := filepath.Join("/run", "slipway-buildah", hex.EncodeToString(h[:6]))
	if os.MkdirAll(p, 0o700) == nil {
		return p
	}
	return filepath.Join(dir, "run")
}

func (b *Buildah) tmp() string { return filepath.Join(b.dir, "tmp") }

// Name implements Builder.
func (b *Buildah) Name() string { return "buildah" }

// Close implements Builder; buildah keeps no connection.
func (b *Buildah) Close() error { return nil }

// command is buildah with the storage flags and an environment that keeps
// its temporary files under the state dir and trusts plain http only for
// loopback registries among refs.
func (b *Buildah) command(ctx context.Context, refs []string, args ...string) (*exec.Cmd, error) {
	full := append([]string{"--root", b.root, "--runroot", b.runRoot, "--storage-driver", b.driver}, args...)
	cmd := exec.CommandContext(ctx, b.bin, full...)
	cmd.Env = append(os.Environ(), "TMPDIR="+b.tmp(), "BUILDAH_ISOLATION=chroot")
	conf, err := b.registriesConf(refs)
	if err != nil {
		return nil, err
	}
	if conf != "" {
		cmd.Env = append(cmd.Env, "CONTAINERS_REGISTRIES_CONF="+conf)
	}
	return cmd, nil
}

// registriesConf writes a registries.conf marking the loopback registries
// of refs insecure (plain http, as tests and a local registry serve), ""
// when there are none. Any other registry keeps TLS verification.
func (b *Buildah) registriesConf(refs []string) (string, error) {
	var hosts []string
	for _, r := range refs {
		ref, err := name.ParseReference(r, name.WeakValidation)
		if err != nil {
			continue // buildah names the bad FROM itself
		}
		if h := ref.Context().RegistryStr(); isLoopback(h) && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return "", nil
	}
	slices.Sort(hosts)
	var buf bytes.Buffer
	buf.WriteString("# written by Slipway for buildah: loopback registries speak plain http\n")
	buf.WriteString("unqualified-search-registries = [\"docker.io\"]\n")
	for _, h := range hosts {
		fmt.Fprintf(&buf, "\n[[registry]]\nlocation = %q\ninsecure = true\n", h)
	}
	h := sha256.Sum256(buf.Bytes())
	path := filepath.Join(b.dir, "registries-"+hex.EncodeToString(h[:6])+".conf")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(b.dir, ".registries-*")
	if err != nil {
		return "", fmt.Errorf("buildah registries.conf: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("buildah registries.conf: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("buildah registries.conf: %w", err)
	}
	return path, os.Rename(tmp.Name(), path)
}

// isLoopback reports whether a registry host[:port] is this machine.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// run runs cmd, passing each output line (stdout and stderr) to line, and
// returns its error with the last lines of stderr.
func run(cmd *exec.Cmd, line func(string)) error {
	if line == nil {
		line = func(string) {}
	}
	pr, pw := io.Pipe()
	var mu sync.Mutex
	var errTail []string
	cmd.Stdout = pw
	stderr := &lineWriter{fn: func(s string) {
		mu.Lock()
		errTail = append(errTail, s)
		if len(errTail) > 5 {
			errTail = errTail[1:]
		}
		mu.Unlock()
		line(s)
	}}
	cmd.Stderr = stderr
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	stderr.flush()
	if err == nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	for i := len(errTail) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(errTail[i], "Error: "); ok {
			return errors.New(msg)
		}
	}
	if len(errTail) > 0 {
		return fmt.Errorf("%w: %s", err, strings.Join(errTail, "; "))
	}
	return err
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(string(w.buf))
		w.buf = nil
	}
}

// RemoveStorage deletes every image of the builder's storage, and its
// state dir, before the storage dir itself is removed (overlay layers are
// only removable through buildah).
func (b *Buildah) RemoveStorage(ctx context.Context) {
	if cmd, err := b.command(ctx, nil, "rmi", "--all", "--force"); err == nil {
		cmd.Run()
	}
	os.RemoveAll(b.runRoot)
}
