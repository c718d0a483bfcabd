package proxy

import (
	"net/url"
	"reflect"
	"testing"
)

// parseURI's shortcut gives what url.ParseRequestURI gives.
func TestParseURIAsNetURL(t *testing.T) {
	for _, u := range []string{"/", "/a.js", "/_next/static/chunks/1-ab12.js", "/~user/x-y_z.css", "//a.js", "/a/../b",
		"/docs/./", "/a%2fb", "/a?b=c", "/%2e%2e/etc", "/a;b", "/a#b", "/a+b", "/é"} {
		got, gerr := parseURI(u)
		want, werr := url.ParseRequestURI(u)
		if (gerr == nil) != (werr == nil) || gerr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v %v, want %#v %v", u, got, gerr, want, werr)
		}
	}
}
