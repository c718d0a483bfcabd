package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/state"
)

// SecretsChange is the body of POST /v1/stores/{store}/secrets: secrets to
// set (name -> value) and names to remove, applied in one transaction.
type SecretsChange struct {
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// SecretsResponse lists a store's server-side secrets by name: values never
// leave serve through the API.
type SecretsResponse struct {
	Store   string             `json:"store"`
	Secrets []state.SecretName `json:"secrets"`
	// Set are the names a POST set; Removed and NotSet those it was asked to unset that had, or had no, value.
	Set     []string `json:"set,omitempty"`
	Removed []string `json:"removed,omitempty"`
	NotSet  []string `json:"notSet,omitempty"`
}

// maxSecretSize bounds one secret value (a PEM key fits many times over).
const maxSecretSize = 64 << 10

// mountSecrets serves `slipway secrets`: GET and POST /v1/stores/{store}/secrets.
func (s *Server) mountSecrets(mux *http.ServeMux) {
	route(mux, "GET /v1/stores/{store}/secrets", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		store := r.PathValue("store")
		if !storeIDRe.MatchString(store) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a store id", store))
			return
		}
		names, err := s.State.SecretNames(r.Context(), store)
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("listing the secrets of %s: %w", store, err))
			return
		}
		writeJSON(w, http.StatusOK, SecretsResponse{Store: store, Secrets: names})
	})
	// Setting a secret is deploy-level: a deploy token can already run code that reads them.
	route(mux, "POST /v1/stores/{store}/secrets", auth.ScopeDeploy, s.handleSecretsChange)
}

func (s *Server) handleSecretsChange(w http.ResponseWriter, r *http.Request) {
	var ch SecretsChange
	store, kv, ok := decodeStoreChange(w, r, "secrets", &ch)
	if !ok {
		return
	}
	rw := storeRW[[]state.SecretName]{what: "secrets", read: "listing", get: s.State.SecretNames, set: s.State.SetSecrets}
	before, after, ok := rw.apply(w, r, store, kv)
	if !ok {
		return
	}
	resp := SecretsResponse{Store: store, Secrets: after, Set: slices.Sorted(maps.Keys(ch.Set))}
	had := map[string]bool{}
	for _, n := range before {
		had[n.Name] = true
	}
	for _, k := range ch.Unset {
		if had[k] {
			resp.Removed = append(resp.Removed, k)
		} else {
			resp.NotSet = append(resp.NotSet, k)
		}
	}
	s.log.Info("secrets changed", "store", store, "set", resp.Set, "unset", resp.Removed)
	auth.Note(r.Context(), store, fmt.Sprintf("secrets set %s unset %s", strings.Join(resp.Set, ","), strings.Join(resp.Removed, ",")))
	writeJSON(w, http.StatusOK, resp)
}

// validate checks names and values (errors name the key, never the value).
func (ch *SecretsChange) validate() (map[string]*string, error) {
	var errs []error
	for k, v := range ch.Set {
		if len(v) > maxSecretSize {
			errs = append(errs, fmt.Errorf("set: the value of %s is over %d KiB", k, maxSecretSize>>10))
		}
		if v == "" {
			errs = append(errs, fmt.Errorf("set: the value of %s is empty (unset removes a secret)", k))
		}
	}
	env := EnvChange{Set: ch.Set, Unset: ch.Unset}
	kv, err := env.validate()
	ch.Unset = env.Unset
	return kv, errors.Join(append(errs, err)...)
}

// storedSecrets merges a store's server-side secrets into a deploy request:
// a value the caller sent wins; every stored one becomes a secret of the
// request (redacted from output, hashed, never recorded).
func (s *Server) storedSecrets(ctx context.Context, store string) (map[string]string, error) {
	return s.State.Secrets(ctx, store)
}

// Secrets lists a store's server-side secrets by name.
func (c *Client) Secrets(ctx context.Context, store string) ([]state.SecretName, error) {
	var r SecretsResponse
	if err := c.getJSON(ctx, "/v1/stores/"+url.PathEscape(store)+"/secrets", &r); err != nil {
		return nil, err
	}
	return r.Secrets, nil
}

// ChangeSecrets sets and unsets server-side secrets of a store in one transaction.
func (c *Client) ChangeSecrets(ctx context.Context, store string, ch SecretsChange) (*SecretsResponse, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/stores/"+url.PathEscape(store)+"/secrets", ch)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r SecretsResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the secrets response: %w", err)
	}
	return &r, nil
}
