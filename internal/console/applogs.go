package console

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
)

// LogLine is one line of a store's live log: an instance's output (Source
// is the instance's name) or its deploy log ("deploy", "deploy:<stage>").
type LogLine struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	App    string    `json:"app,omitempty"`
	Text   string    `json:"text"`
}

// AppLogs sends a store's log lines, already redacted, interleaved by time:
// those after since (zero: the last tail), then new ones as they come until
// ctx ends or send returns false. Serve's StoreLogs is one.
type AppLogs func(ctx context.Context, store string, since time.Time, tail int, send func(LogLine) bool) error

// appLogTail is how many lines a store page's log starts with.
const appLogTail = 200

// heartbeat keeps an idle stream open through proxies that close silent connections.
var heartbeat = 20 * time.Second

// resumeWindow is how late a line may arrive after lines of other sources
// stamped later than it and still be sent on a resume: the resumed stream
// reads that far back, and each source's own position decides what was sent.
const resumeWindow = time.Minute

// logPos is where one source (an instance, a deploy stage) stands: the time
// of its newest line sent and how many lines of that exact time were sent.
type logPos struct {
	at int64
	n  int
}

// logCursor names a stream's position for Last-Event-ID. One source's lines
// come in order, but several sources interleave out of order, so a position
// is kept per source: a line stamped before another instance's newer line
// but arriving after a drop is still sent on the resume, once. Sources with
// nothing newer than the window before the newest line are dropped from the
// id (their lines before that are behind the resumed stream's start anyway).
type logCursor struct {
	max  int64
	srcs map[string]logPos // by srcKey
}

// srcKey is a short, stable name for a source in the id.
func srcKey(source string) string {
	h := fnv.New32a()
	h.Write([]byte(source))
	return fmt.Sprintf("%08x", h.Sum32())
}

// String is "c<max>" then ".<source>~<max-at>~<n>" per source (base 36).
func (c *logCursor) String() string {
	keys := make([]string, 0, len(c.srcs))
	for k := range c.srcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("c" + strconv.FormatInt(c.max, 36))
	for _, k := range keys {
		p := c.srcs[k]
		b.WriteString("." + k + "~" + strconv.FormatInt(c.max-p.at, 36) + "~" + strconv.Itoa(p.n))
	}
	return b.String()
}

// add moves the cursor past line at of source key.
func (c *logCursor) add(key string, at int64) {
	p := c.srcs[key]
	switch {
	case at > p.at:
		p = logPos{at, 1}
	case at == p.at:
		p.n++
	}
	c.srcs[key] = p
	if at > c.max {
		c.max = at
		for k, q := range c.srcs {
			if q.at < c.max-int64(resumeWindow) {
				delete(c.srcs, k)
			}
		}
	}
}

// parseLogCursor reads an id of String's form, or the older "<at>-<n>" (one
// time for all sources, as the console sent before: legacy).
func parseLogCursor(s string) (cur *logCursor, legacy logPos, ok bool) {
	if a, b, found := strings.Cut(s, "-"); found && !strings.HasPrefix(s, "c") {
		at, err1 := strconv.ParseInt(a, 10, 64)
		n, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || at <= 0 || n < 0 {
			return nil, logPos{}, false
		}
		return &logCursor{max: at, srcs: map[string]logPos{}}, logPos{at, n}, true
	}
	parts := strings.Split(strings.TrimPrefix(s, "c"), ".")
	max, err := strconv.ParseInt(parts[0], 36, 64)
	if !strings.HasPrefix(s, "c") || err != nil || max <= 0 {
		return nil, logPos{}, false
	}
	cur = &logCursor{max: max, srcs: map[string]logPos{}}
	for _, p := range parts[1:] {
		f := strings.Split(p, "~")
		if len(f) != 3 || len(f[0]) != 8 {
			return nil, logPos{}, false
		}
		d, err1 := strconv.ParseInt(f[1], 36, 64)
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || d < 0 || n < 1 {
			return nil, logPos{}, false
		}
		cur.srcs[f[0]] = logPos{max - d, n}
	}
	return cur, logPos{}, true
}

// sentBefore reports whether the line at of source key went out before the
// resume (and counts it off).
func sentBefore(resume *logCursor, legacy logPos, floor int64, skip map[string]int, key string, at int64) bool {
	p, known := resume.srcs[key]
	if !known {
		if legacy.at > 0 && at == legacy.at && legacy.n > skip["*"] {
			skip["*"]++
			return true
		}
		return at < floor
	}
	if at < p.at {
		return true
	}
	if at == p.at && skip[key] > 0 {
		skip[key]--
		return true
	}
	return false
}

// sseWriter writes events and heartbeats, one at a time.
type sseWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseWriter) write(chunk string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprint(s.w, chunk); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}

// logEvents streams a store's app log as server-sent events. A reconnect
// (EventSource sends Last-Event-ID by itself) resumes after the last line
// shown, source by source (logCursor): nothing is sent twice, and a line of
// one instance stamped before another's newer line but arriving after the
// drop is sent (up to resumeWindow late).
func (c *Console) logEvents(w http.ResponseWriter, r *http.Request, s *session) {
	store := r.PathValue("store")
	if !can(s, auth.ScopeRead, store) {
		http.Error(w, "your token may not read this store", http.StatusForbidden)
		return
	}
	if c.o.Logs == nil {
		http.Error(w, "this console has no app logs", http.StatusNotFound)
		return
	}
	var since time.Time
	tail := appLogTail
	resume, legacy, resumed := parseLogCursor(r.Header.Get("Last-Event-ID"))
	// floor: lines of a source the id does not name are sent from here on.
	floor := int64(0)
	if resumed {
		floor = resume.max - int64(resumeWindow)
		if legacy.at > 0 {
			floor = legacy.at
		}
		since, tail = time.Unix(0, floor-1), 0
	} else {
		resume = &logCursor{srcs: map[string]logPos{}}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w)}
	if !sw.write(": app log of " + store + "\n\n") {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !sw.write(": ping\n\n") {
					cancel()
					return
				}
			}
		}
	}()
	// The cursor sent on; skip counts, per source, the lines of its id's
	// exact time still to pass over.
	last := &logCursor{max: resume.max, srcs: maps.Clone(resume.srcs)}
	skip := map[string]int{}
	for k, p := range resume.srcs {
		skip[k] = p.n
	}
	send := func(l LogLine) bool {
		at, key := l.Time.UnixNano(), srcKey(l.Source)
		if resumed && sentBefore(resume, legacy, floor, skip, key, at) {
			return true
		}
		last.add(key, at)
		b, _ := json.Marshal(l)
		return sw.write("id: " + last.String() + "\nevent: line\ndata: " + string(b) + "\n\n")
	}
	if err := c.o.Logs(ctx, store, since, tail, send); err != nil {
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		sw.write("event: failed\ndata: " + string(b) + "\n\n")
	}
}
