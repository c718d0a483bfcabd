package proxy

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// LocalHost is the host name a store answers on by default: "<store-id>.localhost".
// Browsers resolve every *.localhost name to the loopback address, so it works
// on a laptop without touching /etc/hosts.
func LocalHost(storeID string) string {
	return strings.ToLower(storeID) + ".localhost"
}

// routeTable is an immutable host → service index. The request path reads it
// through an atomic pointer, so routing never waits on a deploy.
type routeTable struct {
	exact map[string]*service
	// wildcard is keyed by the suffix a "*.example.com" pattern matches,
	// including the leading dot: ".example.com".
	wildcard map[string]*service
}

// lookup finds the service for a normalised host: an exact name first, then
// the most specific wildcard.
func (t *routeTable) lookup(host string) *service {
	if t == nil {
		return nil
	}
	if s, ok := t.exact[host]; ok {
		return s
	}
	if len(t.wildcard) == 0 {
		return nil
	}
	// "a.b.example.com" tries ".b.example.com", then ".example.com", then ".com";
	// the label before the suffix must be non-empty.
	for i := strings.IndexByte(host, '.'); i > 0 && i < len(host)-1; {
		if s, ok := t.wildcard[host[i:]]; ok {
			return s
		}
		j := strings.IndexByte(host[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return nil
}

// requestHost turns a request's Host into the form the table is keyed by:
// no port, lower case, no trailing dot. It allocates only when it must.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// normalizeHostPattern validates a configured host name or "*.suffix" wildcard
// and returns it lower-cased without a trailing dot.
func normalizeHostPattern(h string) (string, error) {
	p := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	name := strings.TrimPrefix(p, "*.")
	if name == "" || len(p) > 253 {
		return "", fmt.Errorf("host %q: %w", h, ErrInvalidHost)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host %q: empty or overlong label: %w", h, ErrInvalidHost)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host %q: character %q not allowed (ports and paths are not part of a host; use punycode for IDNs): %w", h, c, ErrInvalidHost)
			}
		}
	}
	return p, nil
}

// normalizeTarget accepts "127.0.0.1:3000", "localhost:3000" or
// "http://127.0.0.1:3000" and returns "host:port".
func normalizeTarget(t string) (string, error) {
	s := strings.TrimSpace(t)
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("target %q: %w", t, ErrInvalidTarget)
		}
		if u.Scheme != "http" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return "", fmt.Errorf("target %q: only plain http://host:port is supported: %w", t, ErrInvalidTarget)
		}
		s = u.Host
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("target %q: want host:port: %w", t, ErrInvalidTarget)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}
