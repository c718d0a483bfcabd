package auth

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/groupcommit"
	"github.com/slipway-dev/slipway/internal/state"
)

// Entry is one audited call: who, what, when, from where, and how it ended.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Via    string    `json:"via"`
	Remote string    `json:"remote,omitempty"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Store  string    `json:"store,omitempty"`
	// Action is what the handler says it did ("deploy us (deploy-only)").
	Action string `json:"action,omitempty"`
	// Status is the HTTP status; 0 while the call runs (or if serve died during it).
	Status int           `json:"status"`
	Took   time.Duration `json:"took,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Audit is the audit trail in the state database, read straight from db.
// Its writes go through one writer that commits whatever calls are waiting
// in one transaction of the state's write queue (st.Write): a burst of
// webhooks would otherwise queue two transactions per call.
type Audit struct {
	db *sql.DB
	st *state.DB
	w  groupcommit.Queue[auditOp]
	// Log receives the errors of writes nobody waits for (a call's end); default slog.Default().
	Log *slog.Logger
}

var auditSchema = []string{
	`CREATE TABLE audit (
		id      INTEGER PRIMARY KEY,
		at      INTEGER NOT NULL,
		actor   TEXT NOT NULL,
		via     TEXT NOT NULL,
		remote  TEXT NOT NULL DEFAULT '',
		method  TEXT NOT NULL,
		path    TEXT NOT NULL,
		store   TEXT NOT NULL DEFAULT '',
		action  TEXT NOT NULL DEFAULT '',
		status  INTEGER NOT NULL DEFAULT 0,
		took_ns INTEGER NOT NULL DEFAULT 0,
		error   TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_at ON audit (at DESC);`,
}

// OpenAudit prepares the audit table in db.
func OpenAudit(ctx context.Context, db *state.DB) (*Audit, error) {
	if err := db.MigratePart(ctx, "audit", auditSchema); err != nil {
		return nil, err
	}
	a := &Audit{db: db.SQL(), st: db}
	a.w.Flush = a.flush
	return a, nil
}

// begin records a call as it starts, so a call serve dies during is still
// on record; it returns once the row is committed.
func (a *Audit) begin(ctx context.Context, e *Entry) error {
	done := make(chan error, 1)
	a.submit(auditOp{insert: e, done: done})
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("auditing %s %s: %w", e.Method, e.Path, err)
		}
		return nil
	case <-ctx.Done():
		// The row may still be written; the call does not run unrecorded either way.
		return fmt.Errorf("auditing %s %s: %w", e.Method, e.Path, ctx.Err())
	}
}

// end records how a call ended. It does not wait for the write: the answer
// is not held by the audit trail, and List waits for what is queued.
func (a *Audit) end(_ context.Context, e *Entry) error {
	a.submit(auditOp{update: *e})
	return nil
}

// Filter selects audit entries.
type Filter struct {
	// Store, when set, keeps entries about that store only.
	Store string
	// Since keeps entries at or after it.
	Since time.Time
	// Limit caps the result, newest first; default 100.
	Limit int
}

// List returns audit entries, newest first.
func (a *Audit) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if err := a.sync(ctx); err != nil {
		return nil, fmt.Errorf("reading the audit trail: %w", err)
	}
	q := `SELECT id, at, actor, via, remote, method, path, store, action, status, took_ns, error FROM audit WHERE at >= ?`
	args := []any{f.Since.UnixNano()}
	if f.Since.IsZero() {
		args[0] = 0
	}
	if f.Store != "" {
		q += " AND store = ?"
		args = append(args, f.Store)
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := a.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the audit trail: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var at, took int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Via, &e.Remote, &e.Method, &e.Path, &e.Store, &e.Action, &e.Status, &took, &e.Error); err != nil {
			return nil, fmt.Errorf("reading the audit trail: %w", err)
		}
		e.At, e.Took = time.Unix(0, at), time.Duration(took)
		out = append(out, e)
	}
	return out, rows.Err()
}

// note is the audit entry of the call in flight, which handlers annotate.
type note struct {
	mu     sync.Mutex
	store  string
	action string
	err    string
}

type noteKey struct{}

// Note tells the audit trail which store a call is about and what it did.
// Calls outside a Gate (tests, in-process use) are not audited; Note is then a no-op.
func Note(ctx context.Context, store, action string) {
	if n, ok := ctx.Value(noteKey{}).(*note); ok {
		n.mu.Lock()
		n.store, n.action = store, action
		n.mu.Unlock()
	}
}

// NoteError records why an audited call failed (already redacted by the caller).
func NoteError(ctx context.Context, msg string) {
	if n, ok := ctx.Value(noteKey{}).(*note); ok {
		n.mu.Lock()
		n.err = msg
		n.mu.Unlock()
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
