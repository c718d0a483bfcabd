package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A store taken offline with `slipway stop` keeps, sealed, the request its
// live release ran with (env and secrets included), so that `slipway start`
// brings it back after serve restarted in between: the stopped instances'
// specs are gone with them. Created on first use, like store_scale.
const stoppedTable = `CREATE TABLE IF NOT EXISTS stopped_stores (
	store      TEXT PRIMARY KEY,
	request    TEXT NOT NULL,
	stopped_at INTEGER NOT NULL
)`

func stoppedContext(store string) string { return "stopped/" + store }

// SetStopped records, sealed, that store is stopped and what starts it again.
func (d *DB) SetStopped(ctx context.Context, store string, request []byte) error {
	sealed, err := d.seal(string(request), stoppedContext(store))
	if err != nil {
		return fmt.Errorf("recording that %s is stopped: %w", store, err)
	}
	if _, err := d.Exec(ctx, stoppedTable); err != nil {
		return fmt.Errorf("recording that %s is stopped: %w", store, err)
	}
	if _, err := d.Exec(ctx, `INSERT INTO stopped_stores (store, request, stopped_at) VALUES (?,?,?)
		ON CONFLICT (store) DO UPDATE SET request=excluded.request, stopped_at=excluded.stopped_at`, store, sealed, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("recording that %s is stopped: %w", store, err)
	}
	return nil
}

// Stopped returns the request recorded when store was stopped, opened;
// ErrNotFound when it is not stopped.
func (d *DB) Stopped(ctx context.Context, store string) ([]byte, error) {
	var v string
	err := d.db.QueryRowContext(ctx, "SELECT request FROM stopped_stores WHERE store=?", store).Scan(&v)
	// No table yet: no store was ever stopped (reads create nothing).
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading whether %s is stopped: %w", store, err)
	}
	plain, err := d.open(v, stoppedContext(store))
	if err != nil {
		return nil, fmt.Errorf("reading whether %s is stopped: %w", store, err)
	}
	return []byte(plain), nil
}

// ClearStopped forgets that store is stopped (it started, deployed or was removed).
func (d *DB) ClearStopped(ctx context.Context, store string) error {
	if _, err := d.Exec(ctx, stoppedTable); err != nil {
		return fmt.Errorf("recording that %s runs: %w", store, err)
	}
	if _, err := d.Exec(ctx, "DELETE FROM stopped_stores WHERE store=?", store); err != nil {
		return fmt.Errorf("recording that %s runs: %w", store, err)
	}
	return nil
}
