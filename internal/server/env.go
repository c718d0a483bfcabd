package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/slipway-dev/slipway/internal/auth"
)

// EnvChange is the body of POST /v1/stores/{store}/env: keys to set and keys to remove, applied in one transaction.
type EnvChange struct {
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// EnvResponse is what the env endpoints return: the store's env after the request.
type EnvResponse struct {
	Store string            `json:"store"`
	Env   map[string]string `json:"env"`
	// Removed are the keys a POST unset; NotSet the keys it was asked to unset that had no value.
	Removed []string `json:"removed,omitempty"`
	NotSet  []string `json:"notSet,omitempty"`
}

var (
	envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	storeIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// ErrReservedEnv marks env names Slipway sets itself for every instance.
var ErrReservedEnv = errors.New("reserved: Slipway sets it for every instance")

// CheckEnvName returns why name cannot be stored as a store's runtime env, or nil.
func CheckEnvName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case !envNameRe.MatchString(name):
		return fmt.Errorf("%q is not a valid env name: use letters, digits and _, not starting with a digit", name)
	case name == "PORT" || strings.HasPrefix(name, "SLIPWAY_"):
		return fmt.Errorf("%s is %w", name, ErrReservedEnv)
	}
	return nil
}

// checkEnvValue refuses what an exec environment cannot carry.
func checkEnvValue(name, value string) error {
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("the value of %s contains a NUL byte", name)
	}
	return nil
}

// envMu serialises env changes so that Removed and NotSet are exact.
var envMu sync.Mutex

// mountEnv serves a store's runtime env (`slipway env`): GET and POST /v1/stores/{store}/env.
// Secrets never come here: the CLI refuses names the config lists as secrets.
func (s *Server) mountEnv(mux *http.ServeMux) {
	route(mux, "GET /v1/stores/{store}/env", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		store := r.PathValue("store")
		if !storeIDRe.MatchString(store) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("%q is not a store id", store))
			return
		}
		env, err := s.State.Env(r.Context(), store)
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("reading the env of %s: %w", store, err))
			return
		}
		writeJSON(w, http.StatusOK, EnvResponse{Store: store, Env: env})
	})
	route(mux, "POST /v1/stores/{store}/env", auth.ScopeDeploy, func(w http.ResponseWriter, r *http.Request) {
		var ch EnvChange
		store, kv, ok := decodeStoreChange(w, r, "env", &ch)
		if !ok {
			return
		}
		rw := storeRW[map[string]string]{what: "env", read: "reading", get: s.State.Env, set: s.State.SetEnv}
		before, after, ok := rw.apply(w, r, store, kv)
		if !ok {
			return
		}
		resp := EnvResponse{Store: store, Env: after}
		for _, k := range ch.Unset {
			if _, ok := before[k]; ok {
				resp.Removed = append(resp.Removed, k)
			} else {
				resp.NotSet = append(resp.NotSet, k)
			}
		}
		auth.Note(r.Context(), store, fmt.Sprintf("env set %s unset %s", strings.Join(slices.Sorted(maps.Keys(ch.Set)), ","), strings.Join(resp.Removed, ",")))
		s.log.Info("env changed", "store", store, "set", slices.Sorted(maps.Keys(ch.Set)), "unset", resp.Removed)
		writeJSON(w, http.StatusOK, resp)
	})
}

// validate checks names and values and returns the change as state.SetEnv takes it.
func (ch *EnvChange) validate() (map[string]*string, error) {
	if len(ch.Set) == 0 && len(ch.Unset) == 0 {
		return nil, errors.New("nothing to change: give keys to set or unset")
	}
	kv := map[string]*string{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(ch.Set)) {
		v := ch.Set[k]
		if err := CheckEnvName(k); err != nil {
			errs = append(errs, fmt.Errorf("set: %w", err))
			continue
		}
		if err := checkEnvValue(k, v); err != nil {
			errs = append(errs, fmt.Errorf("set: %w", err))
			continue
		}
		kv[k] = &v
	}
	seen := map[string]bool{}
	unset := ch.Unset[:0:0]
	for _, k := range ch.Unset {
		if err := CheckEnvName(k); err != nil {
			errs = append(errs, fmt.Errorf("unset: %w", err))
			continue
		}
		if _, both := ch.Set[k]; both {
			errs = append(errs, fmt.Errorf("%s is both set and unset", k))
			continue
		}
		if !seen[k] {
			seen[k] = true
			unset = append(unset, k)
			kv[k] = nil
		}
	}
	ch.Unset = unset
	return kv, errors.Join(errs...)
}

// Env returns the runtime env of a store (set with `slipway env set`).
func (c *Client) Env(ctx context.Context, store string) (map[string]string, error) {
	var r EnvResponse
	if err := c.getJSON(ctx, "/v1/stores/"+url.PathEscape(store)+"/env", &r); err != nil {
		return nil, err
	}
	if r.Env == nil {
		r.Env = map[string]string{}
	}
	return r.Env, nil
}

// ChangeEnv sets and unsets runtime env keys of a store in one transaction and returns the result.
func (c *Client) ChangeEnv(ctx context.Context, store string, ch EnvChange) (*EnvResponse, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/stores/"+url.PathEscape(store)+"/env", ch)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r EnvResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the env response: %w", err)
	}
	if r.Env == nil {
		r.Env = map[string]string{}
	}
	return &r, nil
}
