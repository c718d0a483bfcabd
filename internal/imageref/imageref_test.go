package imageref

import (
	"strings"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, s := range []string{"oci-layout:/var/lib/slipway/images@" + d, "ghcr.io/acme/web@" + d, "127.0.0.1:5000/shop/web@" + d} {
		r, err := Parse(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if r.String() != s || r.Digest.String() != d {
			t.Errorf("%s: round trip %s (digest %s)", s, r, r.Digest)
		}
	}
	if r, _ := Parse("oci-layout:/x@" + d); !r.IsLayout() || r.Layout != "/x" {
		t.Errorf("layout: %+v", r)
	}
	if r, _ := Parse("127.0.0.1:5000/shop/web@" + d); r.Repo.Registry.Scheme() != "http" {
		t.Errorf("loopback registry is not plain HTTP: %s", r.Repo.Registry.Scheme())
	}
	// A private-range registry: go-containerregistry alone would use plain HTTP;
	// Image goes through regpolicy.Transport, which refuses that (see regpolicy's tests).
	for _, bad := range []string{"", "oci-layout:", "oci-layout:/x", "oci-layout:/x@sha256:zz", "ghcr.io/acme/web:latest", "../../etc"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if s, err := LayoutString("/l", d); err != nil || s != "oci-layout:/l@"+d {
		t.Errorf("LayoutString: %q %v", s, err)
	}
}
