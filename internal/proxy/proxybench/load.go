package proxybench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client returns an HTTP client for load generation: keep-alive with a pool
// big enough that no request waits for a connection.
func Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: timeout,
	}
}

// Get sends one GET and reads the whole answer.
func Get(c *http.Client, url string) (status int, body []byte, h http.Header, err error) {
	res, err := c.Get(url)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(res.Body)
	return res.StatusCode, body, res.Header, err
}

// OpenLoop calls fn(i, intended) for requests i = 0, 1, ... at rate per
// second for dur, each in its own goroutine, whether or not earlier ones
// have finished, so a slow server cannot slow the load down (no coordinated
// omission: callers measure latency from intended, not from the actual
// send). It returns when every call has returned.
func OpenLoop(ctx context.Context, rate int, dur time.Duration, fn func(i int, intended time.Time)) int {
	n := int(float64(rate) * dur.Seconds())
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	i := 0
	for ; i < n; i++ {
		intended := start.Add(time.Duration(i) * interval)
		if d := time.Until(intended); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			fn(i, intended)
		}(i)
	}
	wg.Wait()
	return i
}

// ClosedLoop runs conns workers, each sending its next request as soon as
// the previous one returned, for dur. fn returns the request's error.
func ClosedLoop(ctx context.Context, conns int, dur time.Duration, fn func() error) (lat []time.Duration, errs int) {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	var nerr atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t := time.Now()
				if err := fn(); err != nil {
					nerr.Add(1)
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, int(nerr.Load())
}

// Stats summarises latencies.
type Stats struct {
	N        int
	P50, P99 time.Duration
	Max      time.Duration
}

// Summarise sorts lat in place and returns its percentiles.
func Summarise(lat []time.Duration) Stats {
	if len(lat) == 0 {
		return Stats{}
	}
	slices.Sort(lat)
	return Stats{N: len(lat), P50: Percentile(lat, 50), P99: Percentile(lat, 99), Max: lat[len(lat)-1]}
}

// Percentile of sorted latencies, nearest rank.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// WrkPath returns the wrk binary or "".
func WrkPath() string {
	p, _ := exec.LookPath("wrk")
	return p
}

// WrkResult is what wrk --latency reports.
type WrkResult struct {
	P50, P99 time.Duration
	RPS      float64
	Requests int
	Errors   int // socket errors and non-2xx/3xx answers
}

// Wrk runs wrk against url (closed loop, conns connections on threads
// threads) and parses its latency distribution.
func Wrk(ctx context.Context, bin, url string, threads, conns int, dur time.Duration) (WrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns),
		"-d", fmt.Sprintf("%ds", int(dur.Seconds())), "--latency", url).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	return parseWrk(string(out))
}

// ParseWrk reads wrk --latency output.
func ParseWrk(out string) (WrkResult, error) { return parseWrk(out) }

func parseWrk(out string) (WrkResult, error) {
	var r WrkResult
	inDist := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "Latency" && len(f) > 1 && f[1] == "Distribution":
			inDist = true
		case inDist && len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50 = d
			} else {
				r.P99 = d
			}
		case len(f) > 3 && f[1] == "requests" && f[2] == "in":
			inDist = false
			r.Requests, _ = strconv.Atoi(f[0])
		case f[0] == "Socket" && len(f) > 2 && f[1] == "errors:":
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				r.Errors += n
			}
		case f[0] == "Non-2xx" && len(f) > 4:
			n, _ := strconv.Atoi(f[len(f)-1])
			r.Errors += n
		case f[0] == "Requests/sec:" && len(f) == 2:
			r.RPS, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if r.RPS == 0 || r.P99 == 0 {
		return r, fmt.Errorf("wrk output not understood:\n%s", out)
	}
	return r, nil
}

func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q: %w", s, err)
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}

// Ms formats a duration in milliseconds for tables.
func Ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}
