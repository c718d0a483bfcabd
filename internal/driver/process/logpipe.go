package process

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/logpipe"
)

// An instance's output does not go straight to its log file: it goes through
// a pipe to the Driver's log keeper (this binary again, in log-pipe mode: see
// internal/logpipe), which redacts and stamps each line and appends it to the
// file. The keeper is one process for all the instances a Driver starts,
// started with the first; it outlives a restart of Slipway as the instances
// do, and ends once the last instance it pipes for has.

// logKeeper is the Driver's keeper process and its end of the control socket.
type logKeeper struct {
	mu  sync.Mutex // serialises sends and restarts
	ctl int        // our end of the socket; -1 before the first start
}

// sendLog hands the keeper an instance's output pipe (the read end) and log
// file with its secrets: never in argv or the environment. A keeper that
// has died (killed by someone) is replaced once.
func (d *Driver) sendLog(id string, out, logf *os.File, secrets []string) error {
	k := &d.keeper
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	for range 2 {
		if k.ctl < 0 {
			if k.ctl, err = startKeeper(); err != nil {
				return fmt.Errorf("starting the log keeper: %w", err)
			}
		}
		if err = logpipe.Send(k.ctl, out, logf, id, secrets); err == nil {
			return nil
		}
		syscall.Close(k.ctl)
		k.ctl = -1
	}
	return err
}

// startKeeper starts a keeper and returns our end of its control socket.
func startKeeper() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return -1, err
	}
	// Close-on-exec before any other fork can inherit them: an instance
	// holding the socket would keep an idle keeper alive after serve exits.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, fmt.Errorf("creating its socket: %w", err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "log keeper")
	defer theirs.Close()
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{exe},
		Env:        []string{logpipe.Env + "=1"},
		Dir:        "/",
		ExtraFiles: []*os.File{theirs}, // fd 3, see internal/logpipe
		// A session of its own: a terminal's signals to serve's group do
		// not reach it.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		syscall.Close(fds[0])
		return -1, err
	}
	go cmd.Wait() // reap it; it ends after serve and its last instance
	return fds[0], nil
}

// parseStamp splits a stored line into its time and text; a line without a
// stamp (written before stamps existed) has the zero time.
func parseStamp(line string) (time.Time, string) {
	const n = len(logpipe.StampLayout)
	if len(line) > n && line[n] == ' ' {
		if t, err := time.Parse(logpipe.StampLayout, line[:n]); err == nil {
			return t, line[n+1:]
		}
	}
	return time.Time{}, line
}
