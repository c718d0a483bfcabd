package process

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/logpipe"
)

// An instance's output does not go straight to its log file: it goes through
// a pipe to a small helper process (this binary again, in log-pipe mode: see
// internal/logpipe), which redacts and stamps each line and appends it to the
// file. The helper runs in the instance's process group and outlives a
// restart of Slipway as the instance does.

// startLogPipe starts the helper for the instance whose process group is
// pgid, reading out (the read end of its output pipe) and appending to logf.
// Secrets are handed over on a pipe, never in argv or the environment.
func startLogPipe(out, logf *os.File, pgid int, secrets []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	defer sr.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{exe},
		Env:         []string{logpipe.Env + "=1"},
		Stdin:       out,
		ExtraFiles:  []*os.File{logf, sr}, // fds 3 and 4, see internal/logpipe
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pgid: pgid},
	}
	if err := cmd.Start(); err != nil {
		sw.Close()
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	_, err = io.WriteString(sw, logpipe.EncodeSecrets(secrets))
	if cerr := sw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	go cmd.Wait() // reap it; it ends with the instance
	return cmd, nil
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
