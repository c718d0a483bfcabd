package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
)

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name   string     `json:"name"`
	Scope  auth.Scope `json:"scope"`
	Stores string     `json:"stores,omitempty"`
}

// TokenCreated answers POST /v1/tokens: the secret, shown this once.
type TokenCreated struct {
	Token  string     `json:"token"`
	Record auth.Token `json:"record"`
}

// mountAuth serves tokens (admin), the audit trail (admin) and whoami (any token).
func (s *Server) mountAuth(mux *http.ServeMux) {
	route(mux, "GET /v1/whoami", auth.ScopeRead, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, auth.FromContext(r.Context()))
	})
	route(mux, "POST /v1/tokens", auth.ScopeAdmin, s.handleTokenCreate)
	route(mux, "GET /v1/tokens", auth.ScopeAdmin, func(w http.ResponseWriter, r *http.Request) {
		ts, err := s.Tokens.List(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, ts)
	})
	route(mux, "DELETE /v1/tokens/{name}", auth.ScopeAdmin, func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		auth.Note(r.Context(), "", "token revoke "+name)
		err := s.Tokens.Revoke(r.Context(), name)
		switch {
		case errors.Is(err, auth.ErrNoToken):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusOK, map[string]string{"revoked": name})
		}
	})
	route(mux, "GET /v1/audit", auth.ScopeAdmin, s.handleAudit)
}

func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the token request: %w", err))
		return
	}
	auth.Note(r.Context(), "", fmt.Sprintf("token create %s scope %s stores %q", req.Name, req.Scope, req.Stores))
	by := auth.FromContext(r.Context()).Name
	secret, tok, err := s.Tokens.Create(r.Context(), req.Name, req.Scope, req.Stores, by)
	switch {
	case errors.Is(err, auth.ErrTokenExists):
		writeError(w, http.StatusConflict, err)
		return
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.log.Info("token created", "name", tok.Name, "scope", tok.Scope, "stores", tok.Stores, "by", by)
	writeJSON(w, http.StatusCreated, TokenCreated{Token: secret, Record: *tok})
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := auth.Filter{Store: q.Get("store")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit: %q is not a number from 1 to 10000", v))
			return
		}
		f.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since: %w", err))
			return
		}
		f.Since = t
	}
	es, err := s.Audit.List(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, es)
}

// CreateToken asks the server for a new token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenCreated, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/tokens", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out TokenCreated
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("reading the token: %w", err)
	}
	return &out, nil
}

// Tokens lists the live tokens.
func (c *Client) Tokens(ctx context.Context) ([]auth.Token, error) {
	var ts []auth.Token
	err := c.getJSON(ctx, "/v1/tokens", &ts)
	return ts, err
}

// RevokeToken revokes a token by name.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Audit returns audit entries, newest first.
func (c *Client) Audit(ctx context.Context, f auth.Filter) ([]auth.Entry, error) {
	q := url.Values{}
	if f.Store != "" {
		q.Set("store", f.Store)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	var es []auth.Entry
	err := c.getJSON(ctx, "/v1/audit?"+q.Encode(), &es)
	return es, err
}

// WhoAmI returns the identity the server sees for this client.
func (c *Client) WhoAmI(ctx context.Context) (*auth.Identity, error) {
	var id auth.Identity
	err := c.getJSON(ctx, "/v1/whoami", &id)
	return &id, err
}
