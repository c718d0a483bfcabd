// Package state keeps Slipway's durable records in SQLite: releases and their
// stage results, deploy locks with leases, and env set at run time.
package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // pure-Go SQLite driver, registered as "sqlite"
)

// DB is an open state database.
type DB struct {
	db   *sql.DB
	path string
	// sealer encrypts values at rest (UseSealer); without one, writing them fails.
	sealer Sealer
	// wslot queues this process's writes (writer.go).
	wslot chan struct{}
	// released is closed when a lock of this process is released (lock.go).
	relMu    sync.Mutex
	released chan struct{}
}

// migrations are applied in order; user_version records how many ran.
var migrations = []string{
	`CREATE TABLE releases (
		id          TEXT PRIMARY KEY,
		project     TEXT NOT NULL,
		store       TEXT NOT NULL,
		number      INTEGER NOT NULL,
		commit_sha  TEXT NOT NULL DEFAULT '',
		kind        TEXT NOT NULL,
		destructive INTEGER NOT NULL DEFAULT 0,
		status      TEXT NOT NULL,
		stage       TEXT NOT NULL DEFAULT '',
		error       TEXT NOT NULL DEFAULT '',
		images      TEXT NOT NULL DEFAULT '{}',
		env_hash    TEXT NOT NULL DEFAULT '',
		env_names   TEXT NOT NULL DEFAULT '[]',
		stages      TEXT NOT NULL DEFAULT '[]',
		host        TEXT NOT NULL DEFAULT '',
		pid         INTEGER NOT NULL DEFAULT 0,
		created_at  INTEGER NOT NULL,
		finished_at INTEGER NOT NULL DEFAULT 0,
		UNIQUE (store, number)
	);
	CREATE INDEX releases_store ON releases (store, number DESC);
	CREATE TABLE locks (
		store      TEXT PRIMARY KEY,
		token      TEXT NOT NULL,
		host       TEXT NOT NULL,
		pid        INTEGER NOT NULL,
		commit_sha TEXT NOT NULL DEFAULT '',
		since      INTEGER NOT NULL,
		expires    INTEGER NOT NULL
	);
	CREATE TABLE store_env (
		store      TEXT NOT NULL,
		key        TEXT NOT NULL,
		value      TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (store, key)
	);`,
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening state %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_pragma=secure_delete(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening state %s: %w", path, err)
	}
	d := &DB{db: db, path: path, wslot: make(chan struct{}, 1)}
	if err := d.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating state %s: %w", path, err)
	}
	if err := d.MigratePart(ctx, "sealed", sealedSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating state %s: %w", path, err)
	}
	return d, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Path returns the database file.
func (d *DB) Path() string { return d.path }

func (d *DB) migrate(ctx context.Context) error {
	return d.Write(ctx, func(tx *sql.Tx) error { return migrateTx(ctx, tx) })
}

func migrateTx(ctx context.Context, tx *sql.Tx) error {
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("state schema version %d is newer than this slipway understands (%d): upgrade slipway", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)))
	return err
}

// Image is what a release runs for one app.
type Image struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// Stage is the recorded result of one pipeline stage.
type Stage struct {
	Name     string    `json:"name"`
	Status   string    `json:"status"` // ok, failed, skipped, timeout
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	ExitCode int       `json:"exitCode"`
	Note     string    `json:"note,omitempty"`
	// Output is the tail of the stage's output, already redacted.
	Output string `json:"output,omitempty"`
}

// Release is one deploy of a store.
type Release struct {
	ID          string           `json:"id"`
	Project     string           `json:"project"`
	Store       string           `json:"store"`
	Number      int              `json:"number"`
	Commit      string           `json:"commit"`
	Kind        Kind             `json:"kind"`
	Destructive bool             `json:"destructive,omitempty"`
	Status      Status           `json:"status"`
	Stage       string           `json:"stage,omitempty"`
	Error       string           `json:"error,omitempty"`
	Images      map[string]Image `json:"images"`
	EnvHash     string           `json:"envHash,omitempty"`
	EnvNames    []string         `json:"envNames,omitempty"`
	Stages      []Stage          `json:"stages,omitempty"`
	Host        string           `json:"host,omitempty"`
	PID         int              `json:"pid,omitempty"`
	CreatedAt   time.Time        `json:"createdAt"`
	FinishedAt  time.Time        `json:"finishedAt,omitzero"`
}

// ErrNotFound is returned when a release does not exist.
var ErrNotFound = errors.New("not found")

const releaseCols = `id, project, store, number, commit_sha, kind, destructive, status, stage, error, images, env_hash, env_names, stages, host, pid, created_at, finished_at`

func scanRelease(row interface{ Scan(...any) error }) (*Release, error) {
	var r Release
	var images, names, stages string
	var created, finished int64
	if err := row.Scan(&r.ID, &r.Project, &r.Store, &r.Number, &r.Commit, &r.Kind, &r.Destructive, &r.Status, &r.Stage, &r.Error,
		&images, &r.EnvHash, &names, &stages, &r.Host, &r.PID, &created, &finished); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	json.Unmarshal([]byte(images), &r.Images)
	json.Unmarshal([]byte(names), &r.EnvNames)
	json.Unmarshal([]byte(stages), &r.Stages)
	r.CreatedAt = time.Unix(0, created)
	if finished != 0 {
		r.FinishedAt = time.Unix(0, finished)
	}
	return &r, nil
}

// Release returns one release by id.
func (d *DB) Release(ctx context.Context, id string) (*Release, error) {
	return scanRelease(d.db.QueryRowContext(ctx, "SELECT "+releaseCols+" FROM releases WHERE id=?", id))
}

// Current returns the store's live release, or ErrNotFound.
func (d *DB) Current(ctx context.Context, store string) (*Release, error) {
	return scanRelease(d.db.QueryRowContext(ctx, "SELECT "+releaseCols+" FROM releases WHERE store=? AND status=? ORDER BY number DESC LIMIT 1", store, StatusLive))
}

// Releases returns a store's releases, newest first; limit <= 0 means all.
func (d *DB) Releases(ctx context.Context, store string, limit int) ([]*Release, error) {
	if limit <= 0 {
		limit = -1
	}
	return d.queryReleases(ctx, "SELECT "+releaseCols+" FROM releases WHERE store=? ORDER BY number DESC LIMIT ?", store, limit)
}

// Unfinished returns releases left pending or deploying, oldest first: after a
// crash these are what recovery looks at.
func (d *DB) Unfinished(ctx context.Context) ([]*Release, error) {
	return d.queryReleases(ctx, "SELECT "+releaseCols+" FROM releases WHERE status IN (?, ?) ORDER BY created_at", StatusPending, StatusDeploying)
}

func (d *DB) queryReleases(ctx context.Context, q string, args ...any) ([]*Release, error) {
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// KeepDigests returns the image digests that must survive a prune: for every
// store, those of its last n releases that served (live or superseded) and of
// any release still being deployed.
func (d *DB) KeepDigests(ctx context.Context, n int) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT images FROM (
		SELECT images, status, ROW_NUMBER() OVER (PARTITION BY store ORDER BY number DESC) AS rn
		FROM releases WHERE status IN (?, ?)) WHERE rn <= ?
		UNION ALL SELECT images FROM releases WHERE status IN (?, ?)`,
		StatusLive, StatusSuperseded, n, StatusPending, StatusDeploying)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out []string
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var imgs map[string]Image
		json.Unmarshal([]byte(raw), &imgs)
		for _, im := range imgs {
			if im.Digest != "" && !seen[im.Digest] {
				seen[im.Digest] = true
				out = append(out, im.Digest)
			}
		}
	}
	return out, rows.Err()
}

// CutOver returns live releases whose deploy never finished: their process died
// after the cutover, during post-deploy or verify.
func (d *DB) CutOver(ctx context.Context) ([]*Release, error) {
	return d.queryReleases(ctx, "SELECT "+releaseCols+" FROM releases WHERE status = ? AND finished_at = 0 ORDER BY created_at", StatusLive)
}
