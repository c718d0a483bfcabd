package process

import (
	"os"
	"os/exec"
)

// gateStart makes cmd wait, once started, until open() is called: it runs
// under /bin/sh, which reads one line from an inherited pipe and execs the real
// program (same pid, same process group) only if that line is "go". The
// driver writes the instance's record between cmd.Start and open(), so a
// process never runs unrecorded: if Slipway dies in between, the pipe closes,
// the read sees end of file, and the command exits without running.
func gateStart(cmd *exec.Cmd) (open func() error, abort func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	script := `IFS= read -r _slipway_go <&` + itoa(fd) + `; exec ` + itoa(fd) + `<&-; [ "$_slipway_go" = go ] && exec "$0" "$@"`
	cmd.Args = append([]string{"/bin/sh", "-c", script, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/bin/sh"
	closeRead := func() { r.Close() }
	open = func() error {
		closeRead()
		_, err := w.Write([]byte("go\n"))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	}
	abort = func() {
		closeRead()
		w.Close()
	}
	return open, abort, nil
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
