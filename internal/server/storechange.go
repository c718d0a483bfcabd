package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// storeChanger is a POST body that changes a store's env or secrets.
type storeChanger interface {
	validate() (map[string]*string, error)
}

// decodeStoreChange reads the store id from the path and the change from the
// body into ch, validated, as state's setters take it. what names the change
// in errors ("env", "secrets"). On failure it has answered and ok is false.
func decodeStoreChange(w http.ResponseWriter, r *http.Request, what string, ch storeChanger) (store string, kv map[string]*string, ok bool) {
	store = r.PathValue("store")
	if !storeIDRe.MatchString(store) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a store id", store))
		return "", nil, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ch); err != nil {
		// The decoder's message can quote the body, values included: keep it out of the answer.
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the %s change: not a JSON object of set and unset", what))
		return "", nil, false
	}
	kv, err := ch.validate()
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return "", nil, false
	}
	return store, kv, true
}

// storeRW reads and writes one kind of store data (env or secrets).
type storeRW[T any] struct {
	what string // "env", "secrets": named in errors
	read string // the verb of a read in errors: "reading", "listing"
	get  func(ctx context.Context, store string) (T, error)
	set  func(ctx context.Context, store string, kv map[string]*string) error
}

// apply writes kv under envMu, between two reads, so that what a change
// removed is exact. On failure it has answered and ok is false.
func (rw storeRW[T]) apply(w http.ResponseWriter, r *http.Request, store string, kv map[string]*string) (before, after T, ok bool) {
	envMu.Lock()
	defer envMu.Unlock()
	var zero T
	before, err := rw.get(r.Context(), store)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("%s the %s of %s: %w", rw.read, rw.what, store, err))
		return zero, zero, false
	}
	if err := rw.set(r.Context(), store, kv); err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("writing the %s of %s: %w", rw.what, store, err))
		return zero, zero, false
	}
	after, err = rw.get(r.Context(), store)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("%s the %s of %s: %w", rw.read, rw.what, store, err))
		return zero, zero, false
	}
	return before, after, true
}
