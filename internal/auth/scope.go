// Package auth guards the control-plane API: bearer tokens stored hashed in
// the state database, scopes (read < deploy < admin) limited to a glob of
// stores, the identity of each caller, and an audit trail of every mutating
// call. The server wraps its API mux with a Gate; handlers ask for a scope
// with RequireScope and for a store with CheckStore.
package auth

import (
	"fmt"
	"path"
	"strings"
)

// Scope is what a token may do. Each scope includes the ones below it.
type Scope string

// Scopes, weakest first.
const (
	ScopeRead   Scope = "read"   // status, releases, logs, env names
	ScopeDeploy Scope = "deploy" // deploy, rollback, restart, env changes
	ScopeAdmin  Scope = "admin"  // tokens, audit, everything else
)

var rank = map[Scope]int{ScopeRead: 1, ScopeDeploy: 2, ScopeAdmin: 3}

// ParseScope checks a scope name.
func ParseScope(s string) (Scope, error) {
	sc := Scope(strings.ToLower(strings.TrimSpace(s)))
	if rank[sc] == 0 {
		return "", fmt.Errorf("scope %q: use read, deploy or admin", s)
	}
	return sc, nil
}

// Allows reports whether s includes need.
func (s Scope) Allows(need Scope) bool { return rank[s] > 0 && rank[s] >= rank[need] }

// CheckGlob validates a stores glob ("" means every store).
func CheckGlob(glob string) error {
	if glob == "" {
		return nil
	}
	if len(glob) > 200 {
		return fmt.Errorf("stores glob longer than 200 characters")
	}
	if _, err := path.Match(glob, ""); err != nil {
		return fmt.Errorf("stores glob %q: %w", glob, err)
	}
	return nil
}

// matchStores reports whether store falls under glob ("" and "*" match all).
func matchStores(glob, store string) bool {
	if glob == "" || glob == "*" {
		return true
	}
	ok, err := path.Match(glob, store)
	return err == nil && ok
}
