package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Providers whose push webhooks serve accepts.
const (
	GitHub = "github"
	GitLab = "gitlab"
	Gitea  = "gitea" // Forgejo sends the same format
)

// Providers lists them in a fixed order.
var Providers = []string{GitHub, GitLab, Gitea}

// MaxBody caps a webhook body (GitHub's own limit is 25 MiB).
const MaxBody = 25 << 20

// Verification errors; each fails closed.
var (
	ErrNotConfigured = errors.New("webhooks from this provider are not configured on this server")
	ErrNoSignature   = errors.New("the request carries no signature")
	ErrBadSignature  = errors.New("the signature does not match")
)

// ReadSecret reads a webhook secret from a file. An empty secret is refused:
// anyone could sign with it.
func ReadSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook secret: %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("the webhook secret file %s is empty", file)
	}
	return []byte(s), nil
}

// Sign returns the hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature over the raw body: GitHub's
// X-Hub-Signature-256 ("sha256=<hex>") and Gitea's X-Gitea-Signature (hex) as
// HMAC-SHA256, GitLab's X-Gitlab-Token as the secret itself; all compared in
// constant time. An empty secret is never accepted.
func Verify(provider string, secret []byte, h http.Header, body []byte) error {
	if len(secret) == 0 {
		return ErrNotConfigured
	}
	switch provider {
	case GitHub:
		sig := h.Get("X-Hub-Signature-256")
		if sig == "" {
			return ErrNoSignature
		}
		got, ok := strings.CutPrefix(sig, "sha256=")
		if !ok {
			return ErrBadSignature
		}
		return compareHex(got, secret, body)
	case Gitea:
		sig := h.Get("X-Gitea-Signature")
		if sig == "" {
			sig = h.Get("X-Forgejo-Signature")
		}
		if sig == "" {
			return ErrNoSignature
		}
		return compareHex(sig, secret, body)
	case GitLab:
		tok := h.Get("X-Gitlab-Token")
		if tok == "" {
			return ErrNoSignature
		}
		if subtle.ConstantTimeCompare([]byte(tok), secret) != 1 {
			return ErrBadSignature
		}
		return nil
	}
	return fmt.Errorf("unknown webhook provider %q", provider)
}

func compareHex(got string, secret, body []byte) error {
	want := hmac.New(sha256.New, secret)
	want.Write(body)
	raw, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(got)))
	if err != nil || !hmac.Equal(raw, want.Sum(nil)) {
		return ErrBadSignature
	}
	return nil
}

// Event kinds.
const (
	EventPing  = "ping"
	EventPush  = "push"
	EventOther = "other"
)

// Event is what a verified delivery says.
type Event struct {
	Provider string `json:"provider"`
	Delivery string `json:"delivery"`
	Kind     string `json:"kind"`
	// Name is the provider's event name (push, Push Hook, ping, ...).
	Name string `json:"name"`
	Ref  string `json:"ref,omitempty"`
	// Branch is set for a push to refs/heads/...; Tag for refs/tags/....
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	After  string `json:"after,omitempty"`
	Before string `json:"before,omitempty"`
	// Deleted is a push that removed the ref.
	Deleted bool `json:"deleted,omitempty"`
	// HeadMessage is the head commit's message, as the payload says (only used to skip).
	HeadMessage string `json:"-"`
	// Pusher is who pushed, as the payload says (for the job's who; not trusted for anything else).
	Pusher string `json:"pusher,omitempty"`
}

// DeliveryID returns the provider's delivery id header.
func DeliveryID(provider string, h http.Header) string {
	switch provider {
	case GitHub:
		return h.Get("X-GitHub-Delivery")
	case GitLab:
		if id := h.Get("X-Gitlab-Event-UUID"); id != "" {
			return id
		}
		return h.Get("X-Gitlab-Webhook-UUID")
	case Gitea:
		if id := h.Get("X-Gitea-Delivery"); id != "" {
			return id
		}
		return h.Get("X-Forgejo-Delivery")
	}
	return ""
}

type pushPayload struct {
	Ref         string `json:"ref"`
	Before      string `json:"before"`
	After       string `json:"after"`
	Deleted     bool   `json:"deleted"`
	CheckoutSHA string `json:"checkout_sha"`
	ObjectKind  string `json:"object_kind"`
	HeadCommit  *struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	} `json:"head_commit"`
	Commits []struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	} `json:"commits"`
	Pusher *struct {
		Name     string `json:"name"`
		Login    string `json:"login"`
		Username string `json:"username"`
	} `json:"pusher"`
	UserUsername string `json:"user_username"`
}

// Parse reads a verified delivery. The payload's repository and clone URLs
// are ignored: serve fetches only from its configured repository.
func Parse(provider string, h http.Header, body []byte) (*Event, error) {
	ev := &Event{Provider: provider, Delivery: DeliveryID(provider, h)}
	switch provider {
	case GitHub:
		ev.Name = h.Get("X-GitHub-Event")
	case GitLab:
		ev.Name = h.Get("X-Gitlab-Event")
	case Gitea:
		ev.Name = h.Get("X-Gitea-Event")
		if ev.Name == "" {
			ev.Name = h.Get("X-Forgejo-Event")
		}
	}
	switch strings.ToLower(ev.Name) {
	case "ping":
		ev.Kind = EventPing
		return ev, nil
	case "push", "push hook":
		ev.Kind = EventPush
	case "tag push hook":
		ev.Kind = EventPush // a tag push: acknowledged and ignored below
	default:
		ev.Kind = EventOther
		return ev, nil
	}
	if provider == GitHub && strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("decoding the form payload: %w", err)
		}
		body = []byte(v.Get("payload"))
	}
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decoding the push payload: %w", err)
	}
	ev.Ref, ev.Before, ev.After = p.Ref, p.Before, p.After
	if b, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
		ev.Branch = b
	} else if t, ok := strings.CutPrefix(p.Ref, "refs/tags/"); ok {
		ev.Tag = t
	}
	ev.Deleted = p.Deleted || strings.Trim(p.After, "0") == ""
	head := p.After
	if p.CheckoutSHA != "" {
		head = p.CheckoutSHA
	}
	switch {
	case p.HeadCommit != nil:
		ev.HeadMessage = p.HeadCommit.Message
	default:
		for _, c := range p.Commits {
			if c.ID == head {
				ev.HeadMessage = c.Message
			}
		}
		if ev.HeadMessage == "" && len(p.Commits) > 0 {
			ev.HeadMessage = p.Commits[len(p.Commits)-1].Message
		}
	}
	switch {
	case p.Pusher != nil && p.Pusher.Login != "":
		ev.Pusher = p.Pusher.Login
	case p.Pusher != nil && p.Pusher.Username != "":
		ev.Pusher = p.Pusher.Username
	case p.Pusher != nil:
		ev.Pusher = p.Pusher.Name
	default:
		ev.Pusher = p.UserUsername
	}
	return ev, nil
}

// SkipMarker returns the [skip ci] / [skip deploy] marker in msg, "" when none.
func SkipMarker(msg string) string {
	l := strings.ToLower(msg)
	for _, m := range []string{"[skip ci]", "[ci skip]", "[skip deploy]", "[deploy skip]"} {
		if strings.Contains(l, m) {
			return m
		}
	}
	return ""
}
