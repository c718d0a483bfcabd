package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/handoff"
)

// Hand-off timeouts: the new serve waits for the old one's in-flight API calls
// (a deploy among them) before it can take the state over.
const (
	handoffStart   = time.Minute      // until the new serve is up and waiting for the state
	handoffAPI     = 2 * time.Minute  // in-flight API calls of the old serve
	handoffReady   = 10 * time.Minute // until the new serve serves
	handoffLockFor = handoffAPI + 2*time.Minute
)

// listen binds a listener through the hand-off set: the socket systemd or the
// serve being replaced passed in under that name or address, else a new one.
func (s *Server) listen(name, network, addr string) (net.Listener, error) {
	return s.o.Listeners.Listen(name, network, addr)
}

// lockDataDir takes serve.lock. A serve started by a hand-off waits for the
// old one to let go of it (after its in-flight API calls), telling it first
// that it is up.
func (s *Server) lockDataDir(f *os.File) error {
	if !s.o.Listeners.FromParent() {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return fmt.Errorf("%w (%s)", ErrRunning, s.o.DataDir)
		}
		return nil
	}
	if err := s.o.Listeners.Notify("waiting"); err != nil {
		return fmt.Errorf("telling the old serve this one is up: %w", err)
	}
	deadline := time.Now().Add(handoffLockFor)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%s): the old serve kept it %s after the hand-off", ErrRunning, s.o.DataDir, handoffLockFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// announceReady tells the serve being replaced (and systemd) that this one serves.
func (s *Server) announceReady() {
	s.o.Listeners.CloseUnused()
	if err := s.o.Listeners.Notify("ready"); err != nil {
		s.log.Warn("hand-off: telling the old serve this one is ready", "error", err)
	}
	state := "READY=1"
	if s.o.Listeners.FromParent() {
		state = "MAINPID=" + strconv.Itoa(os.Getpid()) + "\nREADY=1"
	}
	if err := handoff.SdNotify(state); err != nil {
		s.log.Warn("telling systemd serve is ready", "error", err)
	}
}

// upgradeSignals are the signals that re-execute serve's binary on the same
// sockets; only `slipway serve` (which passes Listeners) asks for them, so a
// SIGHUP still ends `slipway up` with its terminal.
func upgradeSignals(on bool) (<-chan os.Signal, func()) {
	if !on {
		return nil, func() {}
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP, syscall.SIGUSR2)
	return c, func() { signal.Stop(c) }
}

// handOff starts the binary at serve's path again on the same sockets. Once it
// is up, this serve stops its control plane (supervisor, API, registry,
// metrics: their sockets stay open in the new one), finishes in-flight API
// calls and lets go of the state; the router serves on until the new serve
// is ready. It reports whether this serve must now drain and exit.
func (s *Server) handOff(stopControl func(context.Context)) bool {
	child, err := s.o.Listeners.Upgrade()
	if err != nil {
		s.log.Error("hand-off: starting the new serve; this one serves on", "error", err)
		return false
	}
	s.log.Info("hand-off: new serve started", "pid", child.Pid)
	if err := child.Await("waiting", handoffStart); err != nil {
		child.Kill()
		s.log.Error("hand-off: the new serve did not come up; this one serves on", "pid", child.Pid, "error", err)
		return false
	}
	s.o.Listeners.KeepSocketFiles()
	s.handedOff = true
	ctx, cancel := context.WithTimeout(context.Background(), handoffAPI)
	stopControl(ctx)
	cancel()
	s.releaseState()
	if err := child.Await("ready", handoffReady); err != nil {
		s.log.Error("hand-off: the new serve failed after taking over the state; exiting so that serve's supervisor (systemd) starts it again", "pid", child.Pid, "error", err)
		return true
	}
	s.log.Info("hand-off: the new serve is ready; draining in-flight requests", "pid", child.Pid)
	return true
}

// quiesceGrace lets connections accepted just before the listeners closed
// send their request: net/http drops, unanswered, a request it reads after
// Shutdown began (the client sees EOF), so stop accepting first, wait, then
// shut down.
const quiesceGrace = 300 * time.Millisecond

// quiesce stops accepting on lns (this process's copies: a socket handed to
// another serve, or held by systemd, stays open there) and waits a moment.
func quiesce(lns ...net.Listener) {
	closed := false
	for _, ln := range lns {
		if ln != nil {
			ln.Close()
			closed = true
		}
	}
	if closed {
		time.Sleep(quiesceGrace)
	}
}

// shutdownAll stops servers gracefully within ctx, then closes what is left.
func shutdownAll(ctx context.Context, srvs ...*http.Server) {
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			srv.Close()
		}
	}
}

// releaseState closes what the next serve opens: the state database and the
// data dir lock (the router and its sockets stay).
func (s *Server) releaseState() {
	if s.State != nil {
		s.State.Close()
		s.State = nil
	}
	if s.lockFile != nil {
		s.lockFile.Close()
		s.lockFile = nil
	}
}
