package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/redact"
)

// LogEntry is one NDJSON line of GET /v1/stores/{store}/logs.
type LogEntry struct {
	Time time.Time `json:"time"`
	// Source names where the line comes from: an instance's name, or
	// "deploy"/"deploy:<stage>" for the store's deploy and day-two jobs and
	// their hooks.
	Source string `json:"source"`
	App    string `json:"app,omitempty"`
	Text   string `json:"text"`
}

// LogsQuery is what GET /v1/stores/{store}/logs takes.
type LogsQuery struct {
	App    string
	Since  time.Duration // 0: everything stored
	Tail   int           // 0: every line
	Follow bool
}

// maxTail bounds ?tail=.
const maxTail = 100000

func (s *Server) mountLogs(mux *http.ServeMux) {
	route(mux, "GET /v1/stores/{store}/logs", auth.ScopeRead, s.handleLogs)
}

func parseLogsQuery(r *http.Request) (LogsQuery, error) {
	q := r.URL.Query()
	var lq LogsQuery
	lq.App = q.Get("app")
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return lq, fmt.Errorf("since: %q is not a duration like 10m", v)
		}
		lq.Since = d
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTail {
			return lq, fmt.Errorf("tail: %q is not a number from 0 to %d", v, maxTail)
		}
		lq.Tail = n
	}
	lq.Follow = q.Get("follow") == "1" || q.Get("follow") == "true"
	return lq, nil
}

// handleLogs answers a store's instance output and job output interleaved
// by time, then, with follow, new lines as they come.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	store, ok := storeParam(w, r)
	if !ok {
		return
	}
	lq, err := parseLogsQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var since time.Time
	if lq.Since > 0 {
		since = time.Now().Add(-lq.Since)
	}
	st := &logStream{w: w}
	if err := s.StoreLogs(r.Context(), store, lq, since, st.send); err != nil && !st.started {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	st.start()
}

// StoreLogs sends a store's instance output (each line named by its
// instance) and its deploy log, redacted and interleaved by time: the lines
// after since (zero: all stored; q.Tail keeps the last ones), then, with
// q.Follow, new lines as they come until ctx ends or send returns false. The
// console's live app log and GET /v1/stores/{store}/logs both read it.
func (s *Server) StoreLogs(ctx context.Context, store string, q LogsQuery, since time.Time, send func(LogEntry) bool) error {
	red := redact.New(s.Deployer.SecretValues(store)...)
	var gone atomic.Bool
	var mu sync.Mutex
	out := func(e LogEntry) {
		// Runtimes that store output themselves (docker) are redacted here; the
		// process runtime's lines are redacted already.
		e.Text = red.String(e.Text)
		mu.Lock()
		defer mu.Unlock()
		if !gone.Load() && !send(e) {
			gone.Store(true)
		}
	}
	insts, err := s.storeInstances(ctx, store, q.App)
	if err != nil {
		return err
	}
	var all []LogEntry
	for _, in := range insts {
		s.instanceLogs(ctx, in, since, false, func(e LogEntry) { all = append(all, e) })
	}
	jobOff, _ := pipeline.ReadJobLog(s.o.DataDir, store, since, 0, func(l pipeline.JobLine) { all = append(all, jobEntry(l)) })
	slices.SortStableFunc(all, func(a, b LogEntry) int { return a.Time.Compare(b.Time) })
	if q.Tail > 0 && len(all) > q.Tail {
		all = all[len(all)-q.Tail:]
	}
	for _, e := range all {
		out(e)
	}
	if !q.Follow || gone.Load() {
		return nil
	}
	last := time.Now()
	if n := len(all); n > 0 && all[n-1].Time.After(last) {
		last = all[n-1].Time
	}
	s.followLogs(ctx, store, q.App, last, jobOff, insts, out, gone.Load)
	return nil
}

func (s *Server) storeInstances(ctx context.Context, store, app string) ([]driver.Instance, error) {
	match := map[string]string{driver.LabelManaged: "true", driver.LabelStore: store, driver.LabelRole: "web"}
	if app != "" {
		match[driver.LabelApp] = app
	}
	insts, err := s.Driver.List(ctx, match)
	if err != nil {
		return nil, fmt.Errorf("listing the instances of %s: %w", store, err)
	}
	return insts, nil
}

// instanceLogs reads one instance's lines after since. A runtime without
// timed logs gives its lines the instance's start time (and cannot follow).
func (s *Server) instanceLogs(ctx context.Context, in driver.Instance, since time.Time, follow bool, fn func(LogEntry)) {
	app := in.Labels[driver.LabelApp]
	if tl, ok := s.Driver.(driver.TimedLogger); ok {
		tl.TimedLogs(ctx, in.ID, since, follow, func(l driver.LogLine) {
			if l.Time.IsZero() {
				l.Time = in.Started
			}
			fn(LogEntry{Time: l.Time, Source: in.Name, App: app, Text: l.Text})
		})
		return
	}
	if follow {
		return
	}
	var buf bytes.Buffer
	if err := s.Driver.Logs(ctx, in.ID, &buf, false); err != nil {
		return
	}
	for _, line := range bytes.Split(bytes.TrimRight(buf.Bytes(), "\n"), []byte("\n")) {
		if len(line) > 0 {
			fn(LogEntry{Time: in.Started, Source: in.Name, App: app, Text: string(line)})
		}
	}
}

func jobEntry(l pipeline.JobLine) LogEntry {
	src := "deploy"
	if l.Stage != "" {
		src += ":" + l.Stage
	}
	return LogEntry{Time: l.Time, Source: src, Text: l.Text}
}

// followLogs streams new lines until the client goes: every instance is
// followed (new ones, from a restart or scale, are picked up each second)
// and the job log is polled.
func (s *Server) followLogs(ctx context.Context, store, app string, since time.Time, jobOff int64, insts []driver.Instance, send func(LogEntry), gone func() bool) {
	followed := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	follow := func(in driver.Instance, from time.Time) {
		followed[in.ID] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.instanceLogs(ctx, in, from, true, send)
		}()
	}
	for _, in := range insts {
		follow(in, since)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		jobOff, _ = pipeline.ReadJobLog(s.o.DataDir, store, time.Time{}, jobOff, func(l pipeline.JobLine) { send(jobEntry(l)) })
		if n%4 != 3 {
			continue
		}
		now, err := s.storeInstances(ctx, store, app)
		if err != nil {
			continue
		}
		for _, in := range now {
			if !followed[in.ID] {
				follow(in, time.Time{})
			}
		}
		if gone() {
			return
		}
	}
}

// logStream writes LogEntry lines as NDJSON, flushing each; the header goes
// out with the first line (so an error before it can still be a 500).
type logStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *json.Encoder
	started bool
}

func (s *logStream) start() {
	if s.started {
		return
	}
	s.started = true
	s.w.Header().Set("Content-Type", "application/x-ndjson")
	s.w.WriteHeader(http.StatusOK)
	s.rc, s.enc = http.NewResponseController(s.w), json.NewEncoder(s.w)
}

// send writes one line; false once the client is gone. StoreLogs serialises calls.
func (s *logStream) send(e LogEntry) bool {
	s.start()
	s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.enc.Encode(e) == nil && s.rc.Flush() == nil
}
