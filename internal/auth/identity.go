package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Identity is who makes a request.
type Identity struct {
	// Name is the token's name, or "unix:uid N" for the socket.
	Name string `json:"name"`
	// Scope of the caller; "" for an anonymous caller.
	Scope Scope `json:"scope,omitempty"`
	// Stores is the glob of stores the caller may touch ("" for all).
	Stores string `json:"stores,omitempty"`
	// Via is "token", "socket" or "anonymous".
	Via string `json:"via"`
	// Remote is the client address (the socket for local callers).
	Remote string `json:"remote,omitempty"`
}

// Anonymous reports whether the caller presented no credentials.
func (id *Identity) Anonymous() bool { return id == nil || id.Via == "anonymous" }

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller, or nil when the request did not go through a Gate.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// Error is an authentication (401) or authorisation (403) refusal.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Sentinels for errors.Is on an *Error.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Is maps the code to the sentinels.
func (e *Error) Is(target error) bool {
	return (target == ErrUnauthenticated && e.Code == http.StatusUnauthorized) ||
		(target == ErrForbidden && e.Code == http.StatusForbidden)
}

// Check reports whether the caller in ctx has scope need; nil when it has.
func Check(ctx context.Context, need Scope) error {
	id := FromContext(ctx)
	if id.Anonymous() {
		return &Error{http.StatusUnauthorized, "this call needs a token: pass --token or SLIPWAY_TOKEN (slipway token create makes one)"}
	}
	if !id.Scope.Allows(need) {
		return &Error{http.StatusForbidden, fmt.Sprintf("token %s has scope %s; this call needs %s", id.Name, id.Scope, need)}
	}
	return nil
}

// CheckStore reports whether the caller in ctx may act on store with scope need.
func CheckStore(ctx context.Context, need Scope, store string) error {
	if err := Check(ctx, need); err != nil {
		return err
	}
	if id := FromContext(ctx); !matchStores(id.Stores, store) {
		return &Error{http.StatusForbidden, fmt.Sprintf("token %s may act on stores %s only, not %s", id.Name, id.Stores, store)}
	}
	return nil
}
