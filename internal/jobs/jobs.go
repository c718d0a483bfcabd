// Package jobs is serve's job queue, persisted in SQLite: one job deploys one
// store at one commit. Per store one job runs and at most one waits (a newer
// commit supersedes the waiting one); a global limit bounds parallel jobs;
// cancels stop at the next safe point; jobs cut short by a restart are marked
// interrupted and queued again once.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"

	"github.com/slipway-dev/slipway/internal/groupcommit"
)

// Statuses.
const (
	StatusWaiting     = "waiting"
	StatusRunning     = "running"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusCancelled   = "cancelled"
	StatusSuperseded  = "superseded"
	StatusInterrupted = "interrupted"
)

// Triggers.
const (
	TriggerCLI     = "cli"
	TriggerAPI     = "api"
	TriggerWebhook = "webhook"
	TriggerConsole = "console"
)

// Kinds.
const (
	KindBuildDeploy = "build-deploy"
	KindDeployOnly  = "deploy-only"
	KindRollback    = "rollback"
)

// Stages a job moves through; StageDeploy is the point from which a cancel no longer stops it.
const (
	StageQueued  = ""
	StageFetch   = "fetch"
	StageCompose = "compose"
	StageBuild   = "build"
	StageDeploy  = "deploy"
)

// Job deploys one store at one commit.
type Job struct {
	ID      string `json:"id"`
	Trigger string `json:"trigger"`
	// Who triggered it: a token's name, a webhook's pusher, a console user.
	Who    string `json:"who"`
	Kind   string `json:"kind"`
	Store  string `json:"store"`
	Commit string `json:"commit"`
	// Target is the release a rollback returns to.
	Target string `json:"target,omitempty"`
	// Ref is the branch the commit was pushed to, if any.
	Ref string `json:"ref,omitempty"`
	// Reasons say why the store is deployed (compose reasons, or "requested").
	Reasons []string `json:"reasons,omitempty"`
	// Delivery is the webhook delivery that queued it.
	Delivery string `json:"delivery,omitempty"`
	Status   string `json:"status"`
	Stage    string `json:"stage,omitempty"`
	Error    string `json:"error,omitempty"`
	// Release is the release the job created.
	Release string `json:"release,omitempty"`
	// SupersededBy is the newer job that replaced this waiting one.
	SupersededBy string `json:"supersededBy,omitempty"`
	// RequeuedFrom is the interrupted job this one repeats.
	RequeuedFrom    string           `json:"requeuedFrom,omitempty"`
	CancelRequested bool             `json:"cancelRequested,omitempty"`
	Timings         map[string]int64 `json:"timingsMs,omitempty"`
	CreatedAt       time.Time        `json:"createdAt"`
	StartedAt       time.Time        `json:"startedAt,omitzero"`
	FinishedAt      time.Time        `json:"finishedAt,omitzero"`

	// Direct marks a job serve ran as it was asked (POST /v1/deploys), not queued.
	Direct bool `json:"direct,omitempty"`
}

// Done reports whether the job has ended.
func (j *Job) Done() bool {
	switch j.Status {
	case StatusWaiting, StatusRunning:
		return false
	}
	return true
}

// Line is one line of a job's log.
type Line struct {
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// ErrNotFound means no job has that id.
var ErrNotFound = errors.New("no such job")

// ErrFinished means the job already ended and cannot be cancelled.
var ErrFinished = errors.New("the job has already finished")

const schema = `CREATE TABLE IF NOT EXISTS jobs (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	store      TEXT NOT NULL,
	status     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_store ON jobs (store, status);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS job_logs (
	job  INTEGER NOT NULL,
	seq  INTEGER NOT NULL,
	at   INTEGER NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (job, seq)
);
CREATE TABLE IF NOT EXISTS deliveries (
	provider TEXT NOT NULL,
	id       TEXT NOT NULL,
	at       INTEGER NOT NULL,
	answer   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (provider, id)
);`

// deliveryColumns were added to deliveries after its first version (jobs.db files of older serves lack them).
var deliveryColumns = map[string]string{
	"state": `ALTER TABLE deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'done'`,
	"event": `ALTER TABLE deliveries ADD COLUMN event TEXT NOT NULL DEFAULT ''`,
}

// Queue is the persisted job queue.
type Queue struct {
	db *sql.DB
	// mu serialises writes that read-then-write (enqueue, claim, cancel): one
	// serve owns the file, so a process lock is enough and avoids busy retries.
	mu sync.Mutex
	// wake nudges the scheduler when a job is queued or ends.
	wake chan struct{}

	subMu sync.Mutex
	subs  map[string][]chan struct{}

	runMu   sync.Mutex
	cancels map[string]context.CancelFunc

	// batch groups the writes of a burst of deliveries into shared transactions.
	batch groupcommit.Queue[*batchOp]
}

// Open opens (creating if needed) the queue database at path.
func Open(ctx context.Context, path string) (*Queue, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the job queue %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the job queue %s: %w", path, err)
	}
	if err := addColumns(ctx, db, "deliveries", deliveryColumns); err != nil {
		db.Close()
		return nil, fmt.Errorf("upgrading the job queue %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	q := &Queue{db: db, wake: make(chan struct{}, 1), subs: map[string][]chan struct{}{}, cancels: map[string]context.CancelFunc{}}
	q.batch.Flush = q.flushBatch
	return q, nil
}

// Close closes the database.
func (q *Queue) Close() error { return q.db.Close() }

func jobID(seq int64) string { return "j-" + strconv.FormatInt(seq, 10) }

func seqOf(id string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "j-"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "j-") || n <= 0 {
		return 0, fmt.Errorf("%q is not a job id (j-N): %w", id, ErrNotFound)
	}
	return n, nil
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func save(ctx context.Context, x execer, j *Job) error {
	seq, err := seqOf(j.ID)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = x.ExecContext(ctx, `UPDATE jobs SET status = ?, doc = ? WHERE seq = ?`, j.Status, string(doc), seq)
	return err
}

func scan(row interface{ Scan(...any) error }) (*Job, error) {
	var doc string
	if err := row.Scan(&doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	j := &Job{}
	if err := json.Unmarshal([]byte(doc), j); err != nil {
		return nil, fmt.Errorf("decoding a job record: %w", err)
	}
	return j, nil
}

// Enqueue records j as waiting (see Submit).
func (q *Queue) Enqueue(ctx context.Context, j *Job) (*Job, error) {
	out, _, err := q.Submit(ctx, j)
	return out, err
}

// Submitted says what Submit did.
type Submitted struct {
	// Existing is set when a job of the same store, commit and kind already
	// ran or waited: that job is returned and nothing new is queued.
	Existing bool
	// Superseded is the waiting job of the store that j replaced.
	Superseded string
}

// Submit records j as waiting, in one transaction: a job of the same store
// already running or waiting at the same commit and kind is returned instead;
// one waiting at another commit is marked superseded by j.
func (q *Queue) Submit(ctx context.Context, j *Job) (*Job, Submitted, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, Submitted{}, err
	}
	defer tx.Rollback()
	out, sub, err := q.submitTx(ctx, tx, j)
	if err != nil {
		return nil, sub, err
	}
	if err := tx.Commit(); err != nil {
		return nil, sub, err
	}
	q.submitted(sub)
	return out, sub, nil
}

// submitted wakes whoever follows a superseded job, and the scheduler, once the transaction is committed.
func (q *Queue) submitted(sub Submitted) {
	if sub.Superseded != "" {
		q.notify(sub.Superseded)
	}
	if !sub.Existing {
		q.kick()
	}
}

// submitTx is Submit inside tx; the caller holds q.mu and commits.
func (q *Queue) submitTx(ctx context.Context, tx *sql.Tx, j *Job) (*Job, Submitted, error) {
	var sub Submitted
	rows, err := tx.QueryContext(ctx, `SELECT doc FROM jobs WHERE store = ? AND status IN (?, ?) ORDER BY seq`, j.Store, StatusRunning, StatusWaiting)
	if err != nil {
		return nil, sub, err
	}
	var waiting *Job
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			rows.Close()
			return nil, sub, err
		}
		if a.Commit == j.Commit && a.Kind == j.Kind {
			rows.Close()
			sub.Existing = true
			return a, sub, nil
		}
		if a.Status == StatusWaiting {
			waiting = a
		}
	}
	rows.Close()
	now := time.Now().UTC()
	j.Status, j.Stage, j.CreatedAt = StatusWaiting, StageQueued, now
	res, err := tx.ExecContext(ctx, `INSERT INTO jobs (store, status, created_at, doc) VALUES (?, ?, ?, '{}')`, j.Store, j.Status, now.UnixNano())
	if err != nil {
		return nil, sub, err
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return nil, sub, err
	}
	j.ID = jobID(seq)
	if err := save(ctx, tx, j); err != nil {
		return nil, sub, err
	}
	if waiting != nil {
		waiting.Status, waiting.SupersededBy, waiting.FinishedAt = StatusSuperseded, j.ID, now
		if err := save(ctx, tx, waiting); err != nil {
			return nil, sub, err
		}
		q.logTx(ctx, tx, waiting.ID, "superseded by "+j.ID+" (commit "+short(j.Commit)+")")
		sub.Superseded = waiting.ID
	}
	return j, sub, nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Get returns one job.
func (q *Queue) Get(ctx context.Context, id string) (*Job, error) {
	seq, err := seqOf(id)
	if err != nil {
		return nil, err
	}
	return scan(q.db.QueryRowContext(ctx, `SELECT doc FROM jobs WHERE seq = ?`, seq))
}

// Filter selects jobs for List.
type Filter struct {
	Store  string
	Status string
	// Delivery keeps the jobs a webhook delivery queued.
	Delivery string
	// Limit bounds the result; default 50, at most 1000.
	Limit int
}

// List returns jobs, newest first.
func (q *Queue) List(ctx context.Context, f Filter) ([]*Job, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 1000)
	qs := `SELECT doc FROM jobs WHERE 1=1`
	var args []any
	if f.Store != "" {
		qs += ` AND store = ?`
		args = append(args, f.Store)
	}
	if f.Status != "" {
		qs += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Delivery != "" {
		qs += ` AND json_extract(doc, '$.delivery') = ?`
		args = append(args, f.Delivery)
	}
	qs += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := q.db.QueryContext(ctx, qs, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Job{}
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// LastPerStore returns each store's newest job.
func (q *Queue) LastPerStore(ctx context.Context) (map[string]*Job, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT doc FROM jobs WHERE seq IN (SELECT MAX(seq) FROM jobs GROUP BY store)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*Job{}
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out[j.Store] = j
	}
	return out, rows.Err()
}

// Cancel stops a waiting job at once, and asks a running one to stop at its
// next safe point (never once its deploy has started: the swap and the release
// record go together).
func (q *Queue) Cancel(ctx context.Context, id, who string) (*Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, err := q.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch j.Status {
	case StatusWaiting:
		j.Status, j.FinishedAt, j.Error = StatusCancelled, time.Now().UTC(), "cancelled by "+who+" before it started"
		if err := save(ctx, q.db, j); err != nil {
			return nil, err
		}
		q.logTx(ctx, q.db, j.ID, "cancelled by "+who)
		q.notify(j.ID)
	case StatusRunning:
		j.CancelRequested = true
		if err := save(ctx, q.db, j); err != nil {
			return nil, err
		}
		msg := "cancel requested by " + who + ": stopping at the next safe point"
		if j.Stage == StageDeploy {
			msg = "cancel requested by " + who + ": the deploy has started and runs to its end (a cutover is never cut in half)"
		}
		q.logTx(ctx, q.db, j.ID, msg)
		q.runMu.Lock()
		if c := q.cancels[j.ID]; c != nil && j.Stage != StageDeploy {
			c()
		}
		q.runMu.Unlock()
		q.notify(j.ID)
	default:
		return j, fmt.Errorf("%s is %s: %w", j.ID, j.Status, ErrFinished)
	}
	return j, nil
}

// Active returns a store's running and waiting jobs, oldest first.
func (q *Queue) Active(ctx context.Context, store string) ([]*Job, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT doc FROM jobs WHERE store = ? AND status IN (?, ?) ORDER BY seq`, store, StatusRunning, StatusWaiting)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Job
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// addColumns adds the columns of table that are missing.
func addColumns(ctx context.Context, db *sql.DB, table string, cols map[string]string) error {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		have[n] = true
	}
	rows.Close()
	for name, ddl := range cols {
		if have[name] {
			continue
		}
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("adding %s.%s: %w", table, name, err)
		}
	}
	return nil
}
