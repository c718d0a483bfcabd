package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
)

// drainWait bounds how long Run waits for output after the command's
// process group is gone (a grandchild that left the group may hold the pipe).
const drainWait = 2 * time.Second

// Run runs a hook in the image's root filesystem and working directory with
// the same environment as an instance, minus PORT. With Shell the command is
// the host's /bin/sh -c with Cmd joined by spaces; else Cmd is the argv (the
// image's entrypoint and cmd when empty), resolved like an instance's. The
// command gets its own process group, which is killed when ctx ends and
// when the command returns, so nothing it started outlives it.
func (d *Driver) Run(ctx context.Context, spec driver.RunSpec) (int, error) {
	fail := func(err error) (int, error) {
		return -1, fmt.Errorf("running %s: %w", spec.Name, err)
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
	own := map[string]string{"HOST": "127.0.0.1"}
	if data != "" {
		own["SLIPWAY_DATA_DIR"] = data
	}
	argv := spec.Cmd
	if len(argv) == 0 {
		argv = nil // the image's own
	}
	if spec.Shell {
		if len(spec.Cmd) == 0 {
			return fail(errors.New("Shell needs a command"))
		}
		argv = []string{"/bin/sh", "-c", strings.Join(spec.Cmd, " ")}
	}
	cmd, err := d.command(u, argv, spec.Env, own)
	if err != nil {
		return fail(err)
	}
	if spec.Shell {
		cmd.Path = "/bin/sh" // the host's, not the image's
	}

	// Output goes through pipes we read ourselves, so that Wait does not
	// hang on a pipe still held by something the command left behind.
	var drains sync.WaitGroup
	var readers []*os.File
	pipe := func(w io.Writer) (*os.File, error) {
		if w == nil {
			return nil, nil
		}
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
		drains.Add(1)
		go func() {
			defer drains.Done()
			io.Copy(w, r)
		}()
		return pw, nil
	}
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	stdout, err := pipe(spec.Stdout)
	if err != nil {
		return fail(err)
	}
	stderr := stdout
	if spec.Stderr != spec.Stdout {
		if stderr, err = pipe(spec.Stderr); err != nil {
			closeAll(stdout)
			closeAll(readers...)
			return fail(err)
		}
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	err = cmd.Start()
	closeAll(stdout)
	if stderr != stdout {
		closeAll(stderr)
	}
	if err != nil {
		closeAll(readers...)
		drains.Wait()
		return fail(fmt.Errorf("starting %s: %w", cmd.Path, err))
	}
	pgid := cmd.Process.Pid

	waited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		signalGroup(pgid, syscall.SIGKILL)
		<-waited
	}
	// Whatever it left running in its group goes too.
	signalGroup(pgid, syscall.SIGKILL)

	drained := make(chan struct{})
	go func() {
		drains.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(drainWait):
		closeAll(readers...)
		<-drained
	}
	closeAll(readers...)

	code := exitStatus(cmd.ProcessState)
	if err := ctx.Err(); err != nil {
		return code, fmt.Errorf("running %s: %w", spec.Name, err)
	}
	return code, nil
}
