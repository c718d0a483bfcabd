// Package api is the deploy request a trigger (the CLI, a webhook, a console
// button) sends to slipway serve, and the one Validate that both the CLI and
// the server run on it. A request says what (stores, kind) and from where
// (pushed images, or later a commit); serve computes everything else.
package api

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Job kinds.
const (
	KindBuildDeploy = "build-deploy" // images a build just published (by the CLI, by CI)
	KindDeployOnly  = "deploy-only"  // the live release's images with today's config and env
	KindRollback    = "rollback"     // an earlier release's images, no hooks
	KindRestart     = "restart"      // new instances of the live release, no hooks
)

// Kinds lists the job kinds a request may name.
var Kinds = []string{KindBuildDeploy, KindDeployOnly, KindRollback, KindRestart}

// JobRequest is the body of POST /v1/deploys.
type JobRequest struct {
	// Stores to deploy; each one fails or succeeds alone.
	Stores []string `json:"stores"`
	Kind   string   `json:"kind"`
	// Commit the images were built from (build-deploy); recorded in the release.
	Commit string `json:"commit,omitempty"`
	// Images are what a build published, one per store and app (build-deploy only).
	Images []ImageRef `json:"images,omitempty"`
	// To picks the rollback target: the newest release of a commit with this prefix that once served.
	To string `json:"to,omitempty"`
	// Instances overrides how many instances an app runs (1 to Limits.MaxInstances).
	Instances map[string]int `json:"instances,omitempty"`
	// Destructive runs the destructive pipeline; Confirm must name a protected store.
	Destructive bool   `json:"destructive,omitempty"`
	Confirm     string `json:"confirm,omitempty"`
	// Wait for a store's deploy lock instead of failing at once.
	Wait bool `json:"wait,omitempty"`
	// Secrets are values the caller supplies for the stores' secret names. They
	// live in this request and the instances' memory only.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Hooks overrides hook commands: SLIPWAY_HOOK_BEFORE_DEPLOY, _INSTALL,
	// _DESTRUCTIVE_INSTALL, _AFTER_DEPLOY, as read from the caller's environment.
	Hooks map[string]string `json:"hooks,omitempty"`
}

// ImageRef is an image a build pushed: a reference (tag or digest) and, when
// the builder knows it, the digest it pushed. Serve resolves the reference and
// refuses a digest that does not match: the digest recorded is the one run.
type ImageRef struct {
	Store  string `json:"store"`
	App    string `json:"app"`
	Ref    string `json:"ref"`
	Digest string `json:"digest,omitempty"`
}

// HookVars are the hook overrides a request may carry.
var HookVars = []string{"SLIPWAY_HOOK_BEFORE_DEPLOY", "SLIPWAY_HOOK_INSTALL", "SLIPWAY_HOOK_DESTRUCTIVE_INSTALL", "SLIPWAY_HOOK_AFTER_DEPLOY"}

// Limits bound what a request may ask for. The zero value is the default.
type Limits struct {
	// MaxInstances per app; default 32.
	MaxInstances int
	// AllowWildcardHosts lets hosts like *.example.com through that the config does not list.
	AllowWildcardHosts bool
	// Registries (host[:port][/prefix]) images may come from besides the server's own store.
	Registries []string
}

// DefaultMaxInstances is the instance cap when Limits.MaxInstances is 0.
const DefaultMaxInstances = 32

// Max returns the instance cap.
func (l Limits) Max() int {
	if l.MaxInstances > 0 {
		return l.MaxInstances
	}
	return DefaultMaxInstances
}

// Bounds on request fields.
const (
	MaxStores      = 256
	MaxIDLen       = 64
	MaxCommitLen   = 128
	MaxRefLen      = 512
	MaxSecrets     = 256
	MaxSecretBytes = 64 << 10
	MaxHookBytes   = 16 << 10
	MaxHostLen     = 253
)

// FieldError names the part of a request at fault; the API answers it with 400.
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"error"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ErrInvalid matches every *FieldError with errors.Is.
var ErrInvalid = errors.New("invalid request")

// Is makes errors.Is(err, ErrInvalid) work.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Fieldf returns a *FieldError.
func Fieldf(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	idRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	commitRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	envRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRe  = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	digestRe = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
)

// CheckID validates a store or app id: bounded, no path separators, no dot-dot.
func CheckID(field, id string) error {
	switch {
	case id == "":
		return Fieldf(field, "empty id")
	case len(id) > MaxIDLen:
		return Fieldf(field, "id longer than %d characters", MaxIDLen)
	case !idRe.MatchString(id) || strings.Contains(id, ".."):
		return Fieldf(field, "%q is not an id: use letters, digits, '.', '_' and '-', starting with a letter or digit", id)
	}
	return nil
}

// CheckCommit validates a commit (a SHA, or <sha>-dirty-<hash>, or "local").
func CheckCommit(field, c string) error {
	if c == "" {
		return nil
	}
	if len(c) > MaxCommitLen {
		return Fieldf(field, "longer than %d characters (%d)", MaxCommitLen, len(c))
	}
	if !commitRe.MatchString(c) {
		return Fieldf(field, "%q is not a commit: use letters, digits, '.', '_', '+' and '-'", c)
	}
	return nil
}

// CheckHost validates a host name the router would answer on. A wildcard
// (*.example.com) needs allowWildcard; a wildcard over .localhost, where every
// store's own name lives, is never allowed.
func CheckHost(field, h string, allowWildcard bool) error {
	if h == "" || len(h) > MaxHostLen {
		return Fieldf(field, "host name must be 1 to %d characters", MaxHostLen)
	}
	name := h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		if !allowWildcard {
			return Fieldf(field, "wildcard host %q is not allowed (start serve with --allow-wildcard-hosts, or list it in the config's domains)", h)
		}
		if rest == "localhost" {
			return Fieldf(field, "wildcard host %q would capture every store's .localhost name", h)
		}
		name = rest
	}
	for _, l := range strings.Split(name, ".") {
		if !labelRe.MatchString(l) {
			return Fieldf(field, "%q is not a DNS host name (lowercase letters, digits and '-' between dots)", h)
		}
	}
	return nil
}
