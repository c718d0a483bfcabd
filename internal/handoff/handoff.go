// Package handoff lets serve restart or upgrade without refusing a connection.
// Listening sockets come from systemd socket activation (LISTEN_FDS, with
// LISTEN_FDNAMES) or from the serve being replaced (SLIPWAY_HANDOFF_FDS), and
// are handed on to a re-executed binary on SIGHUP or SIGUSR2, the way
// cloudflare/tableflip does: the new process starts on the same sockets, says
// when it is ready, and only then does the old one stop accepting and let its
// in-flight requests finish. A socket never closes in between, so the kernel
// queues what arrives meanwhile.
package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment of a handed-off process.
const (
	// EnvFDs names, comma-separated, the listeners passed as fds 3, 4, …
	EnvFDs = "SLIPWAY_HANDOFF_FDS"
	// EnvReady is the fd of the pipe on which the new process reports
	// "waiting" (started, about to take over the state) and "ready" (serving).
	EnvReady = "SLIPWAY_HANDOFF_READY"
)

const firstFD = 3 // systemd's SD_LISTEN_FDS_START, and exec's first ExtraFiles fd

type inherited struct {
	name string
	ln   net.Listener
	used bool
}

type active struct {
	name string
	ln   net.Listener
}

// Listeners hands out listening sockets: inherited ones when they match, new
// ones otherwise, and remembers them to pass on.
type Listeners struct {
	mu        sync.Mutex
	inherited []*inherited
	active    []active
	// parent is true when a serve being replaced started this process.
	parent bool
	ready  *os.File
	exe    string
}

// FromEnv reads the sockets this process inherited, once, and clears the
// variables that described them so that nothing started later sees them.
func FromEnv() (*Listeners, error) {
	l := &Listeners{exe: executable()}
	names, n := listenFDs()
	if v := os.Getenv(EnvFDs); v != "" {
		l.parent = true
		names = strings.Split(v, ",")
		n = len(names)
	}
	if l.parent {
		// Our stdout and stderr are the old serve's, which may be pipes whose
		// reader goes away with it: a write must fail, not kill us (SIGPIPE).
		signal.Ignore(syscall.SIGPIPE)
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", EnvFDs} {
		os.Unsetenv(k)
	}
	var errs []error
	for i := 0; i < n; i++ {
		fd := firstFD + i
		f := os.NewFile(uintptr(fd), "inherited-"+strconv.Itoa(fd))
		ln, err := net.FileListener(f) // a dup, close-on-exec
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("inherited fd %d: not a listening socket: %w", fd, err))
			continue
		}
		name := ""
		if i < len(names) {
			name = names[i]
		}
		l.inherited = append(l.inherited, &inherited{name: name, ln: ln})
	}
	if v := os.Getenv(EnvReady); v != "" {
		os.Unsetenv(EnvReady)
		fd, err := strconv.Atoi(v)
		if err != nil || fd < firstFD {
			errs = append(errs, fmt.Errorf("%s=%q: not a file descriptor", EnvReady, v))
		} else {
			syscall.CloseOnExec(fd)
			l.ready = os.NewFile(uintptr(fd), "handoff-ready")
		}
	}
	return l, errors.Join(errs...)
}

// listenFDs reads systemd's socket activation variables. LISTEN_PID, when
// set, must be this process (the sockets were meant for it).
func listenFDs() ([]string, int) {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, 0
	}
	if p := os.Getenv("LISTEN_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return nil, 0
	}
	var names []string
	if v := os.Getenv("LISTEN_FDNAMES"); v != "" {
		names = strings.Split(v, ":")
	}
	return names, n
}

// executable is the path this binary was started from, resolved now: after an
// upgrade replaces the file there, that path runs the new binary.
func executable() string {
	if p, err := os.Executable(); err == nil {
		return strings.TrimSuffix(p, " (deleted)")
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return os.Args[0]
}

// FromParent reports whether a serve being replaced started this process.
func (l *Listeners) FromParent() bool { return l != nil && l.parent }

// Inherited reports whether the listener called name came from outside
// (systemd or the serve being replaced) rather than from net.Listen.
func (l *Listeners) Inherited(name string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, in := range l.inherited {
		if in.used && in.name == name {
			return true
		}
	}
	return false
}

// Listen returns the inherited listener called name, else one inherited on the
// same address, else a new one. It is remembered for Upgrade.
func (l *Listeners) Listen(name, network, addr string) (net.Listener, error) {
	if l == nil {
		return net.Listen(network, addr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.take(name, network, addr)
	if ln == nil && strings.HasPrefix(network, "unix") {
		os.Remove(addr) // callers hold the lock of what the socket serves: a file here is stale
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen(network, addr); err != nil {
			return nil, err
		}
	}
	l.active = append(l.active, active{name: name, ln: ln})
	return ln, nil
}

func (l *Listeners) take(name, network, addr string) net.Listener {
	for _, in := range l.inherited {
		if !in.used && in.name == name {
			in.used = true
			return in.ln
		}
	}
	for _, in := range l.inherited {
		if !in.used && sameAddr(in.ln.Addr(), network, addr) {
			in.used = true
			in.name = name
			return in.ln
		}
	}
	return nil
}

func sameAddr(a net.Addr, network, addr string) bool {
	switch ta := a.(type) {
	case *net.UnixAddr:
		return strings.HasPrefix(network, "unix") && ta.Name == addr
	case *net.TCPAddr:
		if !strings.HasPrefix(network, "tcp") {
			return false
		}
		want, err := net.ResolveTCPAddr(network, addr)
		if err != nil || want.Port != ta.Port {
			return false
		}
		return want.IP.Equal(ta.IP) || (len(want.IP) == 0 || want.IP.IsUnspecified()) && ta.IP.IsUnspecified()
	}
	return false
}

// CloseUnused closes inherited sockets nothing asked for.
func (l *Listeners) CloseUnused() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, in := range l.inherited {
		if !in.used {
			in.ln.Close()
			in.used = true
		}
	}
}

// Notify tells the serve that started this one how far it got ("waiting",
// "ready"); without one it does nothing. "ready" closes the channel.
func (l *Listeners) Notify(state string) error {
	if l == nil || l.ready == nil {
		return nil
	}
	_, err := l.ready.WriteString(state + "\n")
	if state == "ready" {
		l.ready.Close()
		l.ready = nil
	}
	return err
}

// KeepSocketFiles stops unix listeners from removing their socket file when
// closed: the process taking over serves on the same file.
func (l *Listeners) KeepSocketFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.active {
		if ul, ok := a.ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
	}
}

// Child is a new serve started by Upgrade.
type Child struct {
	Pid    int
	states chan string
	exited chan error
}

// Upgrade starts the binary at this process's path again, with the same
// arguments and environment, passing it every active listener.
func (l *Listeners) Upgrade() (*Child, error) {
	l.mu.Lock()
	var files []*os.File
	var names []string
	for _, a := range l.active {
		fl, ok := a.ln.(interface{ File() (*os.File, error) })
		if !ok {
			continue
		}
		f, err := fl.File() // a dup without close-on-exec semantics issues: exec passes ExtraFiles
		if err != nil {
			l.mu.Unlock()
			closeFiles(files)
			return nil, fmt.Errorf("passing the %s listener: %w", a.name, err)
		}
		files = append(files, f)
		names = append(names, a.name)
	}
	l.mu.Unlock()
	defer closeFiles(files)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	cmd := exec.Command(l.exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), EnvFDs+"="+strings.Join(names, ","), EnvReady+"="+strconv.Itoa(firstFD+len(files)))
	cmd.ExtraFiles = append(files, w)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("starting %s: %w", l.exe, err)
	}
	c := &Child{Pid: cmd.Process.Pid, states: make(chan string, 4), exited: make(chan error, 1)}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			c.states <- strings.TrimSpace(sc.Text())
		}
		close(c.states)
	}()
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// ErrChildDied means the new serve exited (or closed its pipe) before the state it was waited for.
var ErrChildDied = errors.New("the new serve exited before taking over")

// Await waits up to d for the new serve to report state.
func (c *Child) Await(state string, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case s, ok := <-c.states:
			if !ok {
				return ErrChildDied
			}
			if s == state {
				return nil
			}
		case err := <-c.exited:
			return fmt.Errorf("%w: %v", ErrChildDied, err)
		case <-t.C:
			return fmt.Errorf("the new serve (pid %d) did not report %q within %s", c.Pid, state, d)
		}
	}
}

// Kill stops a new serve that failed to take over.
func (c *Child) Kill() {
	if p, err := os.FindProcess(c.Pid); err == nil {
		p.Signal(syscall.SIGKILL)
	}
}

// SdNotify sends a state line to systemd when it asked for one (NOTIFY_SOCKET,
// for Type=notify units); it does nothing otherwise.
func SdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
