//go:build unix

package logpipe

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

// startTestKeeper runs this test binary as a keeper (Env=1: it runs from
// init, before the test framework) and returns our end of its socket.
func startTestKeeper(t *testing.T) (*exec.Cmd, int, *bytes.Buffer) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fds[0])
	theirs := os.NewFile(uintptr(fds[1]), "keeper")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{Env + "=1"}
	cmd.ExtraFiles = []*os.File{theirs}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, fds[0], &stderr
}

type testInstance struct {
	w   *os.File // the instance's stdout
	log string
}

// sendInstance makes an output pipe and a log file and hands them over.
func sendInstance(t *testing.T, ctl int, id string, secrets ...string) testInstance {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	log := t.TempDir() + "/" + id + ".log"
	logf, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := Send(ctl, r, logf, id, secrets); err != nil {
		t.Fatal(err)
	}
	r.Close()
	logf.Close()
	return testInstance{w: w, log: log}
}

// waitLog waits until the log has n lines and returns them.
func waitLog(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
	}
	t.Fatalf("%s: %q after 5s, want %d lines", path, lines, n)
	return nil
}

// One keeper pipes many instances, each redacted with its own secrets and
// stamped; after serve's end of the socket closes it keeps piping what it
// has and exits once the last instance's output has ended.
func TestKeeper(t *testing.T) {
	cmd, ctl, stderr := startTestKeeper(t)
	a := sendInstance(t, ctl, "a", "sk_live_a_1", "multi\nline")
	b := sendInstance(t, ctl, "b", "sk_live_b_2")
	a.w.WriteString("a says sk_live_a_1 and sk_live_b_2\nmulti\n")
	b.w.WriteString("b says sk_live_a_1 and sk_live_b_2\n")
	la := waitLog(t, a.log, 2)
	lb := waitLog(t, b.log, 1)
	if !strings.HasSuffix(la[0], " a says "+redact.Mask+" and sk_live_b_2") || !strings.HasSuffix(la[1], " "+redact.Mask) {
		t.Errorf("a's log %q: want a's secrets (and only those) redacted", la)
	}
	if !strings.HasSuffix(lb[0], " b says sk_live_a_1 and "+redact.Mask) {
		t.Errorf("b's log %q", lb)
	}
	for _, l := range append(la, lb...) {
		if _, err := time.Parse(StampLayout, l[:len(StampLayout)]); err != nil {
			t.Errorf("line %q: no stamp: %v", l, err)
		}
	}

	syscall.Close(ctl) // serve exits
	a.w.WriteString("a after serve\n")
	waitLog(t, a.log, 3)
	a.w.Close()
	b.w.WriteString("b's last words\n")
	waitLog(t, b.log, 2)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
		t.Fatal("the keeper exited while b's output was open")
	case <-time.After(200 * time.Millisecond):
	}
	b.w.Close()
	select {
	case err := <-exited:
		if err != nil || stderr.Len() > 0 {
			t.Errorf("keeper: %v, output %q", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the keeper still runs 5s after serve and every instance are gone")
	}
}

// A keeper that is sent garbage takes no more instances but keeps piping
// the ones it has.
func TestKeeperBadFrame(t *testing.T) {
	_, ctl, _ := startTestKeeper(t)
	a := sendInstance(t, ctl, "a")
	syscall.Write(ctl, []byte{0xff, 0xff, 0xff, 0xff})
	a.w.WriteString("still here\n")
	if l := waitLog(t, a.log, 1); !strings.HasSuffix(l[0], " still here") {
		t.Errorf("log %q", l)
	}
}

// A pipe whose log file was removed (the instance was stopped) ends even
// while something still holds its write end; that holder gets EPIPE.
func TestKeeperSweepsRemovedLogs(t *testing.T) {
	old := sweepEvery
	sweepEvery = 20 * time.Millisecond
	defer func() { sweepEvery = old }()
	k := &keeper{pipes: map[*os.File]*os.File{}}
	go k.sweep()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	log := t.TempDir() + "/x.log"
	logf, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	rfd, _ := syscall.Dup(int(r.Fd()))
	lfd, _ := syscall.Dup(int(logf.Fd()))
	r.Close()
	logf.Close()
	k.start(rfd, lfd, []byte("x\n"))
	w.WriteString("one\n")
	waitLog(t, log, 1)
	os.Remove(log)
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the pipe of a removed log still runs")
	}
	if _, err := w.WriteString("two\n"); err == nil {
		t.Error("a write after the sweep succeeded; want EPIPE")
	}
}
