// Package registry publishes images: to any OCI registry (Remote) or to an
// OCI image layout directory that serves as Slipway's embedded store
// (Layout). Both upload only what the destination lacks, and both treat an
// image whose config (and so every layer's diff ID) is already under the tag
// as up to date, writing nothing.
package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/regpolicy"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Publisher puts an image under a reference and returns where it landed.
type Publisher interface {
	Publish(ctx context.Context, ref name.Reference, img v1.Image) (name.Digest, error)
}

// Checker tells whether a reference resolves, and to which manifest digest.
type Checker interface {
	Exists(ctx context.Context, ref name.Reference) (v1.Hash, bool, error)
}

// Sentinel errors for conditions callers test with errors.Is.
var (
	// ErrUnauthorized: the registry refused the credentials (401 or 403).
	ErrUnauthorized = errors.New("registry refused the credentials")
	// ErrPlainHTTP: plain HTTP to a non-loopback host without Insecure.
	ErrPlainHTTP = regpolicy.ErrPlainHTTP
)

// Error is a failed publish: which reference, which step, and the
// registry's HTTP status if it answered. Its message never contains the
// configured password (nor the basic-auth header made from it).
type Error struct {
	Ref  string
	Step string
	// StatusCode is the registry's HTTP status; 0 if it never answered.
	StatusCode int
	Err        error

	secrets []string
}

func (e *Error) Error() string {
	return redact(fmt.Sprintf("publishing %s: %s: %v", e.Ref, e.Step, e.Err), e.secrets)
}

// Unwrap gives access to the cause (for errors.As to *transport.Error, or
// errors.Is to context.DeadlineExceeded). Print the Error, not the cause:
// only Error() redacts.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnauthorized) true for 401 and 403 answers.
func (e *Error) Is(target error) bool {
	return target == ErrUnauthorized && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

func newError(ref name.Reference, step string, err error, secrets []string) error {
	if err == nil {
		return nil
	}
	e := &Error{Ref: ref.String(), Step: step, Err: err, secrets: secrets}
	var terr *transport.Error
	if errors.As(err, &terr) {
		e.StatusCode = terr.StatusCode
	}
	return e
}

// secretsFor lists the spellings of a password that could end up in a
// message. Passwords shorter than 3 bytes are not redacted: replacing every
// "a" in a message would destroy it and protect nothing.
func secretsFor(user, password string) []string {
	if len(password) < 3 {
		return nil
	}
	return []string{
		password,
		url.QueryEscape(password),
		url.PathEscape(password),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}
}

func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

func isLoopbackHost(host string) bool { return regpolicy.IsLoopback(host) }

// normalize re-parses ref so that go-containerregistry may fall back to
// plain HTTP exactly when we allow it: loopback hosts, or insecure. (On its
// own it would also do so for RFC 1918 addresses; the transport policy below
// refuses those.)
func normalize(ref name.Reference, insecure bool) (name.Reference, error) {
	if !insecure && !isLoopbackHost(ref.Context().RegistryStr()) {
		return ref, nil
	}
	return name.ParseReference(ref.Name(), name.Insecure)
}
