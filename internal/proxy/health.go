package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// HealthCheck says how a target proves it is ready: GET Path answers 2xx or
// 3xx. Zero fields take the defaults written next to them.
type HealthCheck struct {
	Path     string        `json:"path,omitempty"`     // default "/"
	Host     string        `json:"host,omitempty"`     // Host header sent; default the target's address
	Interval time.Duration `json:"interval,omitempty"` // between checks of one target; default 1s
	Timeout  time.Duration `json:"timeout,omitempty"`  // per check; default 5s
	Deadline time.Duration `json:"deadline,omitempty"` // for the whole gate; default 60s
	// MaxStatus, when set, makes any answer below it healthy (the default check
	// of an app that configures no health path: an unmodified app has no
	// /healthz, but its "/" answering 404 still proves the server is up).
	// Zero keeps the strict rule: 2xx or 3xx.
	MaxStatus int `json:"maxStatus,omitempty"`
}

// Rule says in words what passes the check, for release records and errors.
func (h HealthCheck) Rule() string {
	h = h.withDefaults()
	if h.MaxStatus > 0 {
		return fmt.Sprintf("GET %s answers below %d", h.Path, h.MaxStatus)
	}
	return fmt.Sprintf("GET %s answers 2xx or 3xx", h.Path)
}

// Passes reports whether an answer with status passes the check.
func (h HealthCheck) Passes(status int) bool {
	if h.MaxStatus > 0 {
		return status > 0 && status < h.MaxStatus
	}
	return status >= 200 && status < 400
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Path == "" {
		h.Path = "/"
	}
	if !strings.HasPrefix(h.Path, "/") {
		h.Path = "/" + h.Path
	}
	if h.Interval <= 0 {
		h.Interval = time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = 5 * time.Second
	}
	if h.Deadline <= 0 {
		h.Deadline = 60 * time.Second
	}
	return h
}

// healthClient sends checks on fresh connections, so that a gate leaves no
// pooled connection behind to an instance that may be stopped.
var healthClient = &http.Client{
	Transport: &http.Transport{
		Proxy:              nil,
		DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableKeepAlives:  true,
		DisableCompression: true,
	},
	// A redirect is an answer: the app is up.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// check runs one health check; it returns the status (0 if none came back)
// and an error when the target is not healthy.
func check(ctx context.Context, addr string, h HealthCheck) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
	if err != nil {
		return 0, err
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	req.Header.Set("User-Agent", "slipway-health/1")
	res, err := healthClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the `Get "http://…":` prefix; the address is reported anyway
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s", h.Timeout)
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if !h.Passes(res.StatusCode) {
		return res.StatusCode, fmt.Errorf("status %d", res.StatusCode)
	}
	return res.StatusCode, nil
}

// Fast polling: the first check usually runs while the instance is still
// starting and fails at once; waiting a whole interval after it would make
// every deploy take at least that long. So the gate checks again after
// pollFirst, growing the wait by a quarter each time up to the configured
// interval: a target that becomes ready is seen within about a quarter of
// the time it took, and one that is slow to start is not polled for long at
// that rate (the wait reaches 1s after about 20 checks, 4 s).
const pollFirst = 10 * time.Millisecond

type pollBackoff struct{ cur, max time.Duration }

func newPollBackoff(interval time.Duration) *pollBackoff {
	return &pollBackoff{cur: min(pollFirst, interval), max: interval}
}

// next returns the wait before the next check.
func (b *pollBackoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur+b.cur/4, b.max)
	return d
}

// gate checks every address until all have answered healthy once, the
// gate's deadline passes, or ctx ends. It never sends a proxied request.
func gate(ctx context.Context, service string, addrs []string, h HealthCheck) error {
	gctx, cancel := context.WithTimeoutCause(ctx, h.Deadline, ErrGateDeadline)
	defer cancel()
	results := make([]TargetHealth, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		results[i].Address = addr
		wg.Add(1)
		go func(res *TargetHealth) {
			defer wg.Done()
			wait := newPollBackoff(h.Interval)
			for {
				status, err := check(gctx, res.Address, h)
				if gctx.Err() != nil && err != nil {
					// This check was cut by the gate ending; its error says
					// nothing about the target, so keep the previous one
					// unless there is none.
					if res.Checks == 0 {
						res.Checks, res.LastError = 1, "no answer before the gate ended"
					}
					return
				}
				res.Checks++
				res.LastStatus = status
				if err == nil {
					res.Healthy, res.LastError = true, ""
					return
				}
				res.LastError = ""
				if status == 0 {
					res.LastError = err.Error()
				}
				t := time.NewTimer(wait.next())
				select {
				case <-t.C:
				case <-gctx.Done():
					t.Stop()
					return
				}
			}
		}(&results[i])
	}
	wg.Wait()
	for _, r := range results {
		if !r.Healthy {
			reason := context.Cause(gctx)
			if reason == nil {
				reason = ErrGateDeadline
			}
			return &GateError{Service: service, Path: h.Path, Deadline: h.Deadline, Reason: reason, Targets: results}
		}
	}
	return nil
}

// monitor checks the active targets of every service each interval and
// takes a target out of rotation after three failed checks in a row, back
// in after one success. It is optional (WithHealthMonitor): after a restart
// it is what notices instances that did not survive.
func (r *Router) monitor(interval time.Duration) {
	defer r.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		type job struct {
			t *target
			h HealthCheck
		}
		var jobs []job
		r.mu.Lock()
		for _, s := range r.services {
			for _, t := range s.active.Load().targets {
				jobs = append(jobs, job{t, s.health})
			}
		}
		r.mu.Unlock()
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := j.h
				if h.Timeout > interval {
					h.Timeout = interval
				}
				ctx, cancel := context.WithCancel(context.Background())
				go func() {
					select {
					case <-r.stop:
						cancel()
					case <-ctx.Done():
					}
				}()
				defer cancel()
				if _, err := check(ctx, j.t.addr, h); err != nil {
					if j.t.fails.Add(1) >= 3 && !j.t.down.Swap(true) {
						j.t.log.Warn("target failing health checks; out of rotation", "error", err)
					}
					return
				}
				j.t.fails.Store(0)
				if j.t.down.Swap(false) {
					j.t.log.Info("target healthy again; back in rotation")
				}
			}()
		}
		wg.Wait()
	}
}
