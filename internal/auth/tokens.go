package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/state"
)

// TokenPrefix starts every token, so a leaked one is easy to recognise and scan for.
const TokenPrefix = "slw_"

// Token is a stored token's record; the secret itself is never kept.
type Token struct {
	Name      string    `json:"name"`
	Scope     Scope     `json:"scope"`
	Stores    string    `json:"stores,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	LastUsed  time.Time `json:"lastUsed,omitzero"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// Tokens keeps API tokens, hashed, in the state database.
type Tokens struct {
	db *sql.DB
	st *state.DB // writes go through the state's write queue
}

var tokenSchema = []string{
	`CREATE TABLE auth_tokens (
		id         INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		scope      TEXT NOT NULL,
		stores     TEXT NOT NULL DEFAULT '',
		hash       TEXT NOT NULL UNIQUE,
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		last_used  INTEGER NOT NULL DEFAULT 0,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE UNIQUE INDEX auth_tokens_name ON auth_tokens (name) WHERE revoked_at = 0;`,
}

// OpenTokens prepares the token table in db.
func OpenTokens(ctx context.Context, db *state.DB) (*Tokens, error) {
	if err := db.MigratePart(ctx, "auth_tokens", tokenSchema); err != nil {
		return nil, err
	}
	return &Tokens{db: db.SQL(), st: db}, nil
}

var tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrTokenExists means a live token already has the name.
var ErrTokenExists = errors.New("a token with this name exists: revoke it first")

// ErrNoToken means no live token has the name.
var ErrNoToken = errors.New("no such token")

// ErrInvalid marks a token request with a bad name, scope or glob.
var ErrInvalid = errors.New("invalid token request")

// CheckName validates a token name.
func CheckName(name string) error {
	if !tokenNameRe.MatchString(name) {
		return fmt.Errorf("token name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Create makes a token and returns its secret, which is shown once and never stored.
func (t *Tokens) Create(ctx context.Context, name string, scope Scope, stores, by string) (string, *Token, error) {
	if err := CheckName(name); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := CheckGlob(stores); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", nil, fmt.Errorf("creating token %s: %w", name, err)
	}
	secret := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	tok := &Token{Name: name, Scope: scope, Stores: stores, CreatedAt: time.Now(), CreatedBy: by}
	_, err := t.st.Exec(ctx, `INSERT INTO auth_tokens (name, scope, stores, hash, created_by, created_at) VALUES (?,?,?,?,?,?)`,
		name, string(scope), stores, hashToken(secret), by, tok.CreatedAt.UnixNano())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return "", nil, fmt.Errorf("token %s: %w", name, ErrTokenExists)
		}
		return "", nil, fmt.Errorf("recording token %s: %w", name, err)
	}
	return secret, tok, nil
}

// List returns the live tokens by name.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT name, scope, stores, created_by, created_at, last_used FROM auth_tokens WHERE revoked_at = 0 ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var tk Token
		var created, used int64
		if err := rows.Scan(&tk.Name, &tk.Scope, &tk.Stores, &tk.CreatedBy, &created, &used); err != nil {
			return nil, fmt.Errorf("listing tokens: %w", err)
		}
		tk.CreatedAt = time.Unix(0, created)
		if used != 0 {
			tk.LastUsed = time.Unix(0, used)
		}
		out = append(out, tk)
	}
	return out, rows.Err()
}

// Revoke ends a token at once: its next request gets 401.
func (t *Tokens) Revoke(ctx context.Context, name string) error {
	res, err := t.st.Exec(ctx, `UPDATE auth_tokens SET revoked_at = ? WHERE name = ? AND revoked_at = 0`, time.Now().UnixNano(), name)
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoking token %s: %w", name, ErrNoToken)
	}
	return nil
}

// Verify returns the identity a secret stands for and records its use.
func (t *Tokens) Verify(ctx context.Context, secret string) (*Identity, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return nil, &Error{401, "the token is not a slipway token (they start with " + TokenPrefix + ")"}
	}
	h := hashToken(secret)
	var id Identity
	var rowID int64
	var used int64
	err := t.db.QueryRowContext(ctx, `SELECT id, name, scope, stores, last_used FROM auth_tokens WHERE hash = ? AND revoked_at = 0`, h).
		Scan(&rowID, &id.Name, &id.Scope, &id.Stores, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &Error{401, "unknown or revoked token"}
	}
	if err != nil {
		return nil, fmt.Errorf("checking the token: %w", err)
	}
	// Last use is kept to the second: one write per second per token at most.
	if now := time.Now(); now.Sub(time.Unix(0, used)) > time.Second {
		t.st.Exec(context.WithoutCancel(ctx), `UPDATE auth_tokens SET last_used = ? WHERE id = ?`, now.UnixNano(), rowID)
	}
	id.Via = "token"
	return &id, nil
}

// hashToken is SHA-256: tokens are 256 random bits, so a slow hash adds nothing.
func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
