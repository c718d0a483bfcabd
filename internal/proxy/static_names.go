package proxy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Serves says which file of the site answers the request path p (its
// query ignored) with the router's rules: "/healthz" is healthz,
// healthz.html or healthz/index.html; dot files and paths leaving the
// directory are never served. name is "" when no file answers; tried
// lists what was looked for. A static site runs no process, so this is
// all a health check of one can ask.
func (s StaticSite) Serves(p string) (name string, tried []string, err error) {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return "", nil, fmt.Errorf("static site %s: %w", s.Dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", nil, fmt.Errorf("static site: %w", err)
	}
	defer root.Close()
	if u, err := url.ParseRequestURI(p); err == nil {
		p = u.Path // as the router sees it: decoded, without the query
	}
	tried = fileCandidates(p)
	for _, n := range tried {
		if fi, err := root.Stat(n); err == nil && fi.Mode().IsRegular() {
			return n, tried, nil
		}
	}
	return "", tried, nil
}
