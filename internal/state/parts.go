package state

import (
	"context"
	"database/sql"
	"fmt"
)

// SQL returns the underlying database, for packages that keep their own
// tables in the state database (auth, audit, jobs) through MigratePart.
func (d *DB) SQL() *sql.DB { return d.db }

// MigratePart applies a part's own schema steps in order, recording how many
// ran in the parts table. Parts version independently of the release schema,
// so packages added in parallel never fight over one migration list.
func (d *DB) MigratePart(ctx context.Context, part string, steps []string) error {
	return d.Write(ctx, func(tx *sql.Tx) error { return migratePart(ctx, tx, part, steps) })
}

func migratePart(ctx context.Context, tx *sql.Tx, part string, steps []string) error {
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_parts (part TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrating %s: %w", part, err)
	}
	var v int
	err := tx.QueryRowContext(ctx, "SELECT version FROM schema_parts WHERE part = ?", part).Scan(&v)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("migrating %s: %w", part, err)
	}
	if v > len(steps) {
		return fmt.Errorf("migrating %s: schema version %d is newer than this slipway understands (%d): upgrade slipway", part, v, len(steps))
	}
	for i := v; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrating %s, step %d: %w", part, i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_parts (part, version) VALUES (?, ?)
		ON CONFLICT (part) DO UPDATE SET version = excluded.version`, part, len(steps)); err != nil {
		return fmt.Errorf("migrating %s: %w", part, err)
	}
	return nil
}
