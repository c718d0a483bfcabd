// Package proxybench is the harness shared by bench/proxy and bench/cutover:
// a tiny backend app run as a child process, an nginx runner, load
// generators (open loop and closed loop, plus wrk when installed) and
// latency statistics. Everything listens on 127.0.0.1. Run and EnvWithout
// are the setup steps other benches (bench/swarm, bench/deployonly) share too.
package proxybench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// RoleFlag is the flag a bench binary re-executes itself with to become a child.
const RoleFlag = "-role"

// Child is a re-executed copy of the running bench binary, listening on Addr.
type Child struct {
	Addr string
	// Lines carries what the child prints on stdout after its LISTEN line.
	Lines <-chan string
	stdin io.WriteCloser
	cmd   *exec.Cmd
	done  chan struct{}
}

// Send writes one line to the child's stdin.
func (c *Child) Send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// StartChild re-executes the current binary with args and waits (up to 10s)
// for it to print "LISTEN host:port" on stdout.
func StartChild(args ...string) (*Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting child: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	setDeathSignal(cmd, syscall.SIGKILL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting child %v: %w", args, err)
	}
	lines := make(chan string, 64)
	c := &Child{Lines: lines, stdin: in, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		listening := false
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok && !listening {
				listening = true
				addr <- a
				continue
			}
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	select {
	case c.Addr = <-addr:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("child %v exited before listening", args)
	case <-time.After(10 * time.Second):
		c.Kill()
		return nil, fmt.Errorf("child %v did not listen within 10s", args)
	}
}

// Stop sends SIGTERM and waits up to 5s, then kills.
func (c *Child) Stop() {
	if c == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.Kill()
	}
}

// Kill kills the child and waits for it.
func (c *Child) Kill() {
	if c == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
}

// Serve listens on 127.0.0.1:0, prints "LISTEN addr" for the parent, and
// serves h until SIGTERM or SIGINT, then closes at once: any request still
// in flight fails, which is what a deploy must avoid.
func Serve(h http.Handler) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("LISTEN %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Backend is the app used by the benchmarks: "/" answers a small body
// naming its release, "/slow" the same after SlowFor, "/health" 200.
func Backend(release string, bodySize int, slowFor time.Duration) http.Handler {
	body := []byte("release=" + release + "\n")
	if pad := bodySize - len(body); pad > 0 {
		body = append(body, []byte(strings.Repeat("x", pad-1)+"\n")...)
	}
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter) {
		w.Header().Set("X-Release", release)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(slowFor):
		case <-r.Context().Done():
			return
		}
		answer(w)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { answer(w) })
	return mux
}

// WaitHealthy polls http://addr+path until it answers 2xx, up to timeout.
func WaitHealthy(addr, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		res, err := c.Get("http://" + addr + path)
		if err == nil {
			res.Body.Close()
			if res.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s%s not healthy after %s: %w", addr, path, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a loopback address that was free a moment ago.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }
