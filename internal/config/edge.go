package config

import (
	"io/fs"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// TLS modes of a store (TLSSpec.Mode).
const (
	TLSAuto   = "auto"
	TLSOff    = "off"
	TLSCustom = "custom"
)

// MaxErrorPageBytes bounds a store's error page: it is held in memory by the router.
const MaxErrorPageBytes = 256 << 10

// TLSSpec is a store's `tls:` setting: `off`, `auto` (a certificate from the
// ACME CA; the default) or `{cert: FILE, key: FILE}`, the store's own
// certificate chain and key (PEM, paths relative to the root), which win over
// ACME for every name they cover.
type TLSSpec struct {
	Pos Pos `yaml:"-" json:"-"`
	// Mode is "", TLSAuto, TLSOff or TLSCustom ("" = inherited, else auto).
	Mode string `yaml:"-" json:"mode,omitempty"`
	Cert string `yaml:"cert" json:"cert,omitempty"`
	Key  string `yaml:"key" json:"key,omitempty"`
}

// decodeNode reads a scalar mode or a {cert, key} mapping.
func (t *TLSSpec) decodeNode(d *decoder, n *yaml.Node, where string) {
	t.Pos = posOf(n)
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case TLSAuto, TLSOff:
			t.Mode = n.Value
		default:
			d.ps.errorf(d.file, posOf(n), "write off, auto, or {cert: FILE, key: FILE}", "%s: %q is not a TLS setting", where, n.Value)
		}
		return
	}
	var files struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	}
	d.decodeStruct(n, reflect.ValueOf(&files).Elem(), where)
	t.Mode, t.Cert, t.Key = TLSCustom, files.Cert, files.Key
}

// ErrorPages are a store's own HTML files (relative to the root) for the
// router's error answers.
type ErrorPages struct {
	// Unavailable is shown with 503: the store is stopped or nothing is live.
	Unavailable string `yaml:"503" json:"503,omitempty"`
	// BadGateway is shown with 502: the app failed to answer.
	BadGateway string `yaml:"502" json:"502,omitempty"`
}

// SiteSpec is a store's resolved edge settings (see Config.Site).
type SiteSpec struct {
	TLS        TLSSpec
	HSTS       bool
	ErrorPages ErrorPages
}

// Site resolves a store's TLS, HSTS and error pages: each from the nearest
// store in its chain that sets it.
func (c *Config) Site(id string) SiteSpec {
	var s SiteSpec
	for _, st := range c.Chain(id) {
		if st.TLS.Mode != "" {
			s.TLS = st.TLS
		}
		if st.HSTS != nil {
			s.HSTS = *st.HSTS
		}
		if st.ErrorPages.Unavailable != "" {
			s.ErrorPages.Unavailable = st.ErrorPages.Unavailable
		}
		if st.ErrorPages.BadGateway != "" {
			s.ErrorPages.BadGateway = st.ErrorPages.BadGateway
		}
	}
	if s.TLS.Mode == "" {
		s.TLS.Mode = TLSAuto
	}
	return s
}

// storeEdge checks a store's tls and errorPages files.
func (v *validator) storeEdge(s *Store) {
	c := v.c
	if s.TLS.Mode == TLSCustom {
		if s.TLS.Cert == "" || s.TLS.Key == "" {
			v.ps.errorf(c.File, s.TLS.Pos, "write tls: {cert: certs/shop.pem, key: certs/shop.key}", "store %q: tls needs both cert and key", s.ID)
		}
		v.edgeFile(s, s.TLS.Pos, "tls.cert", s.TLS.Cert, 1<<20)
		v.edgeFile(s, s.TLS.Pos, "tls.key", s.TLS.Key, 1<<20)
	}
	v.edgeFile(s, s.Pos, "errorPages.503", s.ErrorPages.Unavailable, MaxErrorPageBytes)
	v.edgeFile(s, s.Pos, "errorPages.502", s.ErrorPages.BadGateway, MaxErrorPageBytes)
}

// edgeFile checks that p names a regular file inside the repository no
// bigger than limit.
func (v *validator) edgeFile(s *Store, pos Pos, key, p string, limit int64) {
	if p == "" {
		return
	}
	c := v.c
	if why := relPathProblem(p); why != "" {
		v.ps.errorf(c.File, pos, "", "store %q: %s %q %s", s.ID, key, p, why)
		return
	}
	st, err := fs.Stat(v.fsys, p)
	switch {
	case err != nil:
		v.ps.errorf(c.File, pos, "paths are relative to the repository root", "store %q: %s: %s does not exist", s.ID, key, p)
	case !st.Mode().IsRegular():
		v.ps.errorf(c.File, pos, "", "store %q: %s: %s is not a file", s.ID, key, p)
	case st.Size() > limit:
		v.ps.errorf(c.File, pos, "", "store %q: %s: %s is %d bytes, more than %d", s.ID, key, p, st.Size(), limit)
	default:
		if err := noSymlinkInPath(v.fsys, p); err != nil {
			v.ps.errorf(c.File, pos, "", "store %q: %s: %v", s.ID, key, err)
		}
	}
}
