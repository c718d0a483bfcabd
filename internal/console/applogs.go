package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
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

// logID names a line for Last-Event-ID: the newest line time sent so far and
// how many lines of that exact time were sent. Lines of several instances
// arrive interleaved, not sorted, so the id never moves back in time.
type logID struct {
	at int64
	n  int
}

func (l logID) String() string { return strconv.FormatInt(l.at, 10) + "-" + strconv.Itoa(l.n) }

func parseLogID(s string) (logID, bool) {
	a, b, ok := strings.Cut(s, "-")
	at, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || at <= 0 || n < 0 {
		return logID{}, false
	}
	return logID{at, n}, true
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
// shown: lines older than its time are not sent again, nor the ones of that
// exact time already sent. A line of one instance stamped before another's
// newer line but arriving after the connection dropped is the one that can
// be missed.
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
	resume, resumed := parseLogID(r.Header.Get("Last-Event-ID"))
	if resumed {
		since, tail = time.Unix(0, resume.at-1), 0
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
	last := resume
	skip := resume.n
	send := func(l LogLine) bool {
		at := l.Time.UnixNano()
		if resumed && at < resume.at {
			return true
		}
		if resumed && at == resume.at && skip > 0 {
			skip--
			return true
		}
		switch {
		case at > last.at:
			last = logID{at, 1}
		case at == last.at:
			last.n++
		}
		b, _ := json.Marshal(l)
		return sw.write("id: " + last.String() + "\nevent: line\ndata: " + string(b) + "\n\n")
	}
	if err := c.o.Logs(ctx, store, since, tail, send); err != nil {
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		sw.write("event: failed\ndata: " + string(b) + "\n\n")
	}
}
