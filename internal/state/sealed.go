package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-dev/slipway/internal/seal"
)

// sealedSchema holds sealed values (see internal/seal): secrets set with
// `slipway secrets`, the specs of supervised instances (env included) so a
// restarted serve heals them, and meta rows such as the master key's check.
var sealedSchema = []string{
	`CREATE TABLE store_secrets (
		store      TEXT NOT NULL,
		key        TEXT NOT NULL,
		value      TEXT NOT NULL,
		updated_at INTEGER NOT NULL,
		PRIMARY KEY (store, key)
	);
	CREATE TABLE instance_specs (
		id         TEXT PRIMARY KEY,
		store      TEXT NOT NULL,
		spec       TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
}

// Sealer encrypts values at rest; *seal.Box is one.
type Sealer interface {
	Seal(plain []byte, context string) string
	Open(sealed, context string) ([]byte, error)
}

var _ Sealer = (*seal.Box)(nil)

// ErrNoKey means a sealed value was written or read before UseSealer.
var ErrNoKey = errors.New("the state has no master key: values at rest cannot be sealed")

// keyCheck is a known plaintext sealed under the master key in use, so that
// starting with another key fails at once instead of on the first secret.
const keyCheck = "slipway master key check"

// UseSealer makes d seal env, secrets and instance specs with s. It checks that
// s has the key the state was sealed with, and seals any plaintext env rows an
// older Slipway left (in one transaction).
func (d *DB) UseSealer(ctx context.Context, s Sealer) error {
	var n int
	err := d.Write(ctx, func(tx *sql.Tx) (err error) {
		n, err = d.checkKeyAndSeal(ctx, tx, s)
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 {
		// secure_delete zeroes the old cells; the checkpoint moves the new pages
		// over the old ones in the main file and empties the WAL.
		if _, err := d.Exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			return fmt.Errorf("checkpointing after sealing the env: %w", err)
		}
	}
	d.sealer = s
	return nil
}

// checkKeyAndSeal checks (or records) the master key check and seals
// plaintext env rows, returning how many it sealed.
func (d *DB) checkKeyAndSeal(ctx context.Context, tx *sql.Tx, s Sealer) (int, error) {
	var check string
	err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE key='key_check'").Scan(&check)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (key, value) VALUES ('key_check', ?)", s.Seal([]byte(keyCheck), "meta/key_check")); err != nil {
			return 0, fmt.Errorf("recording the master key check: %w", err)
		}
	case err != nil:
		return 0, fmt.Errorf("reading the master key check: %w", err)
	default:
		if got, err := s.Open(check, "meta/key_check"); err != nil || string(got) != keyCheck {
			return 0, fmt.Errorf("the master key does not open this state (%s): use the key it was created with", d.path)
		}
	}
	return sealPlainEnv(ctx, tx, s)
}

// sealPlainEnv rewrites plaintext store_env rows sealed (a migration from
// Slipway versions that kept env in clear).
func sealPlainEnv(ctx context.Context, tx *sql.Tx, s Sealer) (int, error) {
	rows, err := tx.QueryContext(ctx, "SELECT store, key, value FROM store_env")
	if err != nil {
		return 0, err
	}
	type row struct{ store, key, value string }
	var plain []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.store, &r.key, &r.value); err != nil {
			rows.Close()
			return 0, err
		}
		if !seal.IsSealed(r.value) {
			plain = append(plain, r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, r := range plain {
		if _, err := tx.ExecContext(ctx, "UPDATE store_env SET value=? WHERE store=? AND key=?", s.Seal([]byte(r.value), envContext(r.store, r.key)), r.store, r.key); err != nil {
			return 0, fmt.Errorf("sealing the env of %s: %w", r.store, err)
		}
	}
	return len(plain), nil
}

func envContext(store, key string) string    { return "env/" + store + "/" + key }
func secretContext(store, key string) string { return "secret/" + store + "/" + key }
func specContext(id string) string           { return "spec/" + id }

func (d *DB) seal(plain, context string) (string, error) {
	if d.sealer == nil {
		return "", ErrNoKey
	}
	return d.sealer.Seal([]byte(plain), context), nil
}

// open reads a stored value: sealed, or legacy plaintext (env rows before UseSealer migrated them).
func (d *DB) open(stored, context string) (string, error) {
	if !seal.IsSealed(stored) {
		return stored, nil
	}
	if d.sealer == nil {
		return "", ErrNoKey
	}
	b, err := d.sealer.Open(stored, context)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// kvTable is a sealed (store, key) -> value table: store_env or store_secrets.
type kvTable struct {
	name    string
	context func(store, key string) string
}

var (
	envTable    = kvTable{"store_env", envContext}
	secretTable = kvTable{"store_secrets", secretContext}
)

func (d *DB) setKV(ctx context.Context, t kvTable, store string, kv map[string]*string) error {
	return d.Write(ctx, func(tx *sql.Tx) error { return d.setKVTx(ctx, tx, t, store, kv) })
}

func (d *DB) setKVTx(ctx context.Context, tx *sql.Tx, t kvTable, store string, kv map[string]*string) error {
	var err error
	now := time.Now().UnixNano()
	for k, v := range kv {
		if v == nil {
			_, err = tx.ExecContext(ctx, "DELETE FROM "+t.name+" WHERE store=? AND key=?", store, k)
		} else {
			var sealed string
			if sealed, err = d.seal(*v, t.context(store, k)); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO `+t.name+` (store, key, value, updated_at) VALUES (?,?,?,?)
				ON CONFLICT (store, key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at`, store, k, sealed, now)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) getKV(ctx context.Context, t kvTable, store string) (map[string]string, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT key, value FROM "+t.name+" WHERE store=?", store)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		if out[k], err = d.open(v, t.context(store, k)); err != nil {
			return nil, fmt.Errorf("reading %s of %s: %w", k, store, err)
		}
	}
	return out, rows.Err()
}

// SetEnv sets (value != nil) or unsets (nil) env keys of a store, in one
// transaction. Values are sealed at rest.
func (d *DB) SetEnv(ctx context.Context, store string, kv map[string]*string) error {
	return d.setKV(ctx, envTable, store, kv)
}

// Env returns the env set at run time for a store.
func (d *DB) Env(ctx context.Context, store string) (map[string]string, error) {
	return d.getKV(ctx, envTable, store)
}

// SetSecrets sets (value != nil) or unsets (nil) server-side secrets of a
// store, in one transaction. Values are sealed at rest.
func (d *DB) SetSecrets(ctx context.Context, store string, kv map[string]*string) error {
	return d.setKV(ctx, secretTable, store, kv)
}

// Secrets returns a store's server-side secrets, opened. Callers must never
// show the values: SecretNames is for listing.
func (d *DB) Secrets(ctx context.Context, store string) (map[string]string, error) {
	return d.getKV(ctx, secretTable, store)
}

// SecretName is a stored secret as listings show it: never its value.
type SecretName struct {
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
}

// SecretNames lists a store's server-side secrets by name, sorted.
func (d *DB) SecretNames(ctx context.Context, store string) ([]SecretName, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT key, updated_at FROM store_secrets WHERE store=? ORDER BY key", store)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SecretName{}
	for rows.Next() {
		var n SecretName
		var at int64
		if err := rows.Scan(&n.Name, &at); err != nil {
			return nil, err
		}
		n.Updated = time.Unix(0, at)
		out = append(out, n)
	}
	return out, rows.Err()
}

// SaveSpec records, sealed, what serve needs to start an instance again the
// same way (its spec, env included) after a crash of the instance or of serve.
func (d *DB) SaveSpec(ctx context.Context, id, store string, spec []byte) error {
	sealed, err := d.seal(string(spec), specContext(id))
	if err != nil {
		return err
	}
	_, err = d.Exec(ctx, `INSERT INTO instance_specs (id, store, spec, updated_at) VALUES (?,?,?,?)
		ON CONFLICT (id) DO UPDATE SET store=excluded.store, spec=excluded.spec, updated_at=excluded.updated_at`, id, store, sealed, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("recording the spec of instance %s: %w", id, err)
	}
	return nil
}

// DeleteSpecs forgets the specs of instances that are gone or replaced.
func (d *DB) DeleteSpecs(ctx context.Context, ids ...string) error {
	for _, id := range ids {
		if _, err := d.Exec(ctx, "DELETE FROM instance_specs WHERE id=?", id); err != nil {
			return fmt.Errorf("forgetting the spec of instance %s: %w", id, err)
		}
	}
	return nil
}

// Specs returns every recorded instance spec by instance id, opened. A spec
// that does not open is reported in the error and left out.
func (d *DB) Specs(ctx context.Context) (map[string][]byte, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT id, spec FROM instance_specs")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	var errs []error
	for rows.Next() {
		var id, v string
		if err := rows.Scan(&id, &v); err != nil {
			return nil, err
		}
		plain, err := d.open(v, specContext(id))
		if err != nil {
			errs = append(errs, fmt.Errorf("instance %s: %w", id, err))
			continue
		}
		out[id] = []byte(plain)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}
