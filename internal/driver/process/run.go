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
// when the command returns, so nothing it started outlives it. While it
// runs it is in List (role=hook), so a Driver started after Slipway died
// mid-hook can stop it.
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
	// Everything the hook starts carries the marker, and runs in its cgroup
	// where there is one, so that all of it is killed, setsid or not.
	marker := newID()
	procs := newTree(marker)
	defer procs.release()
	own := map[string]string{"HOST": "127.0.0.1", runMarker: marker}
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
	// The hook is recorded like an instance (role=hook) while it runs, so
	// that if Slipway dies meanwhile the next Driver lists and stops it.
	// The record is written under the lock before the process can exit.
	openGate, abortGate, err := gateStart(cmd)
	if err != nil {
		closeAll(stdout)
		if stderr != stdout {
			closeAll(stderr)
		}
		closeAll(readers...)
		drains.Wait()
		return fail(err)
	}
	unlock, err := d.lockState()
	if err != nil {
		abortGate()
		closeAll(stdout)
		if stderr != stdout {
			closeAll(stderr)
		}
		closeAll(readers...)
		drains.Wait()
		return fail(err)
	}
	err = cmd.Start()
	closeAll(stdout)
	if stderr != stdout {
		closeAll(stderr)
	}
	if err != nil {
		unlock()
		abortGate()
		closeAll(readers...)
		drains.Wait()
		return fail(fmt.Errorf("starting %s: %w", cmd.Path, err))
	}
	pgid := cmd.Process.Pid
	// The hook waits at its start gate: nothing runs before it is tracked.
	if terr := procs.track(pgid); terr != nil {
		fmt.Fprintf(os.Stderr, "slipway: %s: %v; killing its descendants through /proc instead\n", spec.Name, terr)
	}
	rec := d.hookRecord(spec, u, pgid)
	rec.Cgroup, rec.Marker = procs.cgroup, marker
	err = d.writeRecord(rec)
	unlock()
	if err == nil {
		err = openGate()
	} else {
		abortGate()
	}
	if err != nil {
		d.removeRecord(rec.ID)
		signalGroup(pgid, syscall.SIGKILL)
		procs.kill()
		cmd.Wait()
		closeAll(readers...)
		drains.Wait()
		return fail(fmt.Errorf("recording the hook: %w", err))
	}
	defer d.removeRecord(rec.ID)

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
	// Whatever it left running goes too: its group, and what left the group.
	signalGroup(pgid, syscall.SIGKILL)
	procs.kill()

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

// hookStopTimeout is the SIGTERM grace a recorded hook gets when it is
// stopped through its record (by recovery after a restart); Run itself
// kills its hook's group outright when ctx ends.
const hookStopTimeout = 5 * time.Second

// hookRecord describes a running hook for List and Stop. It has no Addr: no
// route ever points at a hook.
func (d *Driver) hookRecord(spec driver.RunSpec, u *unpacked, pid int) *record {
	id := newID()
	name := spec.Name
	if name == "" {
		name = "hook-" + id
	}
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[driver.LabelManaged] = "true"
	if labels[driver.LabelRole] == "" {
		labels[driver.LabelRole] = "hook"
	}
	ticks, _ := procStart(pid)
	return &record{
		ID:            id,
		Name:          name,
		Labels:        labels,
		Image:         spec.Image.Ref,
		Digest:        u.digest,
		DataKey:       spec.DataKey,
		PID:           pid,
		PGID:          pid,
		StartTicks:    ticks,
		StopTimeoutMS: hookStopTimeout.Milliseconds(),
		Started:       time.Now().UTC(),
		State:         stateRunning,
	}
}

// removeRecord drops a finished hook's record (a Stop may have removed it already).
func (d *Driver) removeRecord(id string) {
	unlock, err := d.lockState()
	if err != nil {
		return
	}
	defer unlock()
	os.Remove(d.recordPath(id))
}
