package config

import (
	"strings"
	"testing"
)

func TestStoreTLSHSTSAndPagesInherit(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `apps: [{path: apps/web, framework: next}]
stores:
  brand: {template: true, framework: next, hsts: true, errorPages: {"503": pages/down.html}}
  us: {projectName: us, region: r1, domains: [shop.example.com], tls: {cert: certs/shop.pem, key: certs/shop.key}}
  de: {projectName: de, region: r1, tls: off, hsts: false, errorPages: {"502": pages/oops.html}}
`,
		"apps/web/a":                   "",
		"apps/stores/brand/stores/us/": "",
		"apps/stores/brand/stores/de/": "",
		"certs/shop.pem":               "cert",
		"certs/shop.key":               "key",
		"pages/down.html":              "<h1>down</h1>",
		"pages/oops.html":              "<h1>oops</h1>",
	})
	cfg, err := Load(root, "")
	if err != nil {
		t.Fatal(err)
	}
	us := cfg.Site("us")
	if us.TLS.Mode != TLSCustom || us.TLS.Cert != "certs/shop.pem" || us.TLS.Key != "certs/shop.key" || !us.HSTS || us.ErrorPages.Unavailable != "pages/down.html" {
		t.Errorf("us: %+v", us)
	}
	de := cfg.Site("de")
	if de.TLS.Mode != TLSOff || de.HSTS || de.ErrorPages.Unavailable != "pages/down.html" || de.ErrorPages.BadGateway != "pages/oops.html" {
		t.Errorf("de: %+v", de)
	}
	if m := cfg.Site("brand").TLS.Mode; m != TLSAuto {
		t.Errorf("default tls = %q", m)
	}
}

func TestStoreTLSErrorsNameTheLine(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml": `apps: [{path: apps/web, framework: next}]
stores:
  us:
    projectName: us
    region: r1
    framework: next
    tls: automatic
  de:
    projectName: de
    region: r1
    framework: next
    tls: {cert: certs/missing.pem}
  fr:
    projectName: fr
    region: r1
    framework: next
    tls: {cert: certs/a.pem, key: certs/a.key, chain: x}
    errorPages: {"503": ../outside.html, "404": x.html}
`,
		"apps/web/a":      "",
		"apps/stores/us/": "",
		"apps/stores/de/": "",
		"apps/stores/fr/": "",
		"certs/a.pem":     "",
		"certs/a.key":     "",
	})
	_, err := Load(root, "")
	ps := problemsOf(t, err)
	for _, c := range []struct {
		msg  string
		line int
	}{
		{`stores.us.tls: "automatic" is not a TLS setting`, 7},
		{`store "de": tls needs both cert and key`, 12},
		{`store "de": tls.cert: certs/missing.pem does not exist`, 12},
		{`unknown key "stores.fr.tls.chain"`, 17},
		{`store "fr": errorPages.503 "../outside.html"`, 13},
		{`unknown key "stores.fr.errorPages.404"`, 18},
	} {
		p := find(ps, c.msg)
		if p == nil {
			t.Errorf("missing problem %q in:\n%v", c.msg, err)
			continue
		}
		if p.Line != c.line {
			t.Errorf("%q at line %d, want %d", c.msg, p.Line, c.line)
		}
	}
	if !strings.Contains(err.Error(), "slipway.yaml:7:") {
		t.Errorf("no file:line in %v", err)
	}
}
