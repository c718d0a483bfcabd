package proxy

import (
	"html"
	"net/http"
	"strconv"
)

// errorPage writes the router's own short HTML answer. It is deliberately
// small and self-contained: it is what visitors see while an app is down.
func (r *Router) errorPage(w http.ResponseWriter, req *http.Request, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int(r.cfg.retryAfter.Seconds())))
	}
	body := r.customPage(req, code)
	if body == "" {
		body = plainPage(code, msg)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if req.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// customPage is the store's own page for a 502 or 503, "" if it has none.
func (r *Router) customPage(req *http.Request, code int) string {
	if code != http.StatusServiceUnavailable && code != http.StatusBadGateway {
		return ""
	}
	p := r.pagesFor(req.Host)
	switch {
	case p == nil:
		return ""
	case code == http.StatusServiceUnavailable:
		return p.Unavailable
	default:
		return p.BadGateway
	}
}

func plainPage(code int, msg string) string {
	title := strconv.Itoa(code) + " " + http.StatusText(code)
	return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title +
		"</title><style>body{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}</style></head>\n<body><h1>" +
		title + "</h1>\n<p>" + html.EscapeString(msg) + "</p>\n</body></html>\n"
}
