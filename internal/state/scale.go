package state

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The scale table is created on first use rather than by a numbered
// migration: it is additive, and parallel work on the schema must not
// fight over migration numbers.
const scaleTable = `CREATE TABLE IF NOT EXISTS store_scale (
	store      TEXT NOT NULL,
	app        TEXT NOT NULL,
	instances  INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (store, app)
)`

// SetScale records how many instances of each app of a store to run; later
// deploys, restarts and starts use these counts over the config's.
func (d *DB) SetScale(ctx context.Context, store string, counts map[string]int) error {
	return d.Write(ctx, func(tx *sql.Tx) error { return setScale(ctx, tx, store, counts) })
}

func setScale(ctx context.Context, tx *sql.Tx, store string, counts map[string]int) error {
	if _, err := tx.ExecContext(ctx, scaleTable); err != nil {
		return fmt.Errorf("recording the scale of %s: %w", store, err)
	}
	now := time.Now().UnixNano()
	for app, n := range counts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_scale (store, app, instances, updated_at) VALUES (?,?,?,?)
			ON CONFLICT (store, app) DO UPDATE SET instances=excluded.instances, updated_at=excluded.updated_at`, store, app, n, now); err != nil {
			return fmt.Errorf("recording the scale of %s: %w", store, err)
		}
	}
	return nil
}

// Scale returns the recorded instance counts of a store's apps (none recorded: empty).
func (d *DB) Scale(ctx context.Context, store string) (map[string]int, error) {
	if _, err := d.db.ExecContext(ctx, scaleTable); err != nil {
		return nil, fmt.Errorf("reading the scale of %s: %w", store, err)
	}
	rows, err := d.db.QueryContext(ctx, "SELECT app, instances FROM store_scale WHERE store=?", store)
	if err != nil {
		return nil, fmt.Errorf("reading the scale of %s: %w", store, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var app string
		var n int
		if err := rows.Scan(&app, &n); err != nil {
			return nil, err
		}
		out[app] = n
	}
	return out, rows.Err()
}
