package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/registry"
)

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// liveOutput prints log lines and, on a terminal, keeps a block of live
// per-image upload lines below them. Off a terminal it prints timestamped lines only.
type liveOutput struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	active map[string]registry.Progress
	drawn  int // lines of the live block currently on screen
	last   time.Time
}

func newLiveOutput(w io.Writer) *liveOutput {
	return &liveOutput{w: w, tty: isTerminal(w), active: map[string]registry.Progress{}}
}

// Write implements io.Writer for log lines.
func (l *liveOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if !l.tty {
			b.WriteString(time.Now().UTC().Format("15:04:05.000 "))
		}
		b.WriteString(line)
	}
	_, err := io.WriteString(l.w, b.String())
	l.draw()
	return len(p), err
}

// Progress receives registry progress.
func (l *liveOutput) Progress(p registry.Progress) {
	if !l.tty {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.Finished || p.UpToDate {
		delete(l.active, p.Ref)
	} else {
		l.active[p.Ref] = p
	}
	if time.Since(l.last) < 100*time.Millisecond && !p.Finished {
		return
	}
	l.clear()
	l.draw()
}

func (l *liveOutput) clear() {
	if l.drawn > 0 {
		fmt.Fprintf(l.w, "\x1b[%dA\x1b[J", l.drawn)
		l.drawn = 0
	}
}

func (l *liveOutput) draw() {
	if !l.tty || len(l.active) == 0 {
		return
	}
	refs := make([]string, 0, len(l.active))
	for r := range l.active {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		p := l.active[r]
		fmt.Fprintf(l.w, "  pushing %s  %s / %s  (%d/%d blobs)\n", r, mb(p.BytesDone), mb(p.BytesTotal), p.BlobsDone, p.BlobsTotal)
	}
	l.drawn = len(refs)
	l.last = time.Now()
}

// Close removes the live block.
func (l *liveOutput) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clear()
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
