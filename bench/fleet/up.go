package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upProc is a running `slipway up`: serve in the foreground with the fleet deployed.
type upProc struct {
	cmd  *exec.Cmd
	took time.Duration
	once sync.Once
}

// startUp runs slipway up until it prints "serving on" and leaves it serving.
func startUp(bin, repo, state, profile string) (*upProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "up", "-C", repo, "--state-dir", state, "--http", addr)
	cmd.Env = cleanEnv()
	if profile != "" {
		cmd.Env = append(cmd.Env, "SLIPWAY_CPUPROFILE="+profile)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errR, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var stderr strings.Builder
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &upProc{cmd: cmd}
	go func() {
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			mu.Lock()
			stderr.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "serving on") {
			p.took = time.Since(t)
			break
		}
	}
	go io.Copy(io.Discard, out)
	if p.took == 0 {
		p.stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, errors.New("slipway up did not serve:\n" + lastLines(stderr.String(), 30))
	}
	return p, nil
}

// stop ends up with SIGINT (it stops every instance), SIGKILL after 60 s.
func (p *upProc) stop() {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

// peakRSS is serve's VmHWM in MB (up is serve: one process).
func (p *upProc) peakRSS() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
