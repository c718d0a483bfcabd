package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// forwarding decides the X-Forwarded-* headers a target sees. The router
// is the edge unless told otherwise: a client's own X-Forwarded-For is
// replaced by the address the router saw, so an app can trust it. Only
// from a peer in the trusted proxies (a load balancer or CDN in front) is
// the chain kept and the peer appended, like nginx's
// $proxy_add_x_forwarded_for with set_real_ip_from.
type forwarding struct {
	trusted []netip.Prefix
	// trustAll keeps X-Forwarded-Proto and -Host from any peer
	// (WithTrustForwardedHeaders, for a router behind one terminator).
	trustAll bool
}

// ParseTrustedProxies parses "10.0.0.0/8,192.168.1.7" (CIDRs or single
// addresses, comma-separated) for WithTrustedProxies; the error names the
// entry that is wrong.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want a CIDR (10.0.0.0/8) or an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// peer returns the client address the router saw, without the port.
func peer(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
}

// trustedPeer says whether the request came from a trusted proxy.
func (f *forwarding) trustedPeer(req *http.Request) bool {
	if len(f.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(peer(req))
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range f.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// appendHeaders appends the forwarding headers of the synchronous path.
func (f *forwarding) appendHeaders(b []byte, req *http.Request) []byte {
	trusted := f.trustedPeer(req)
	b = append(b, "X-Forwarded-For: "...)
	if prior := req.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		for _, v := range prior {
			b = appendValue(b, v)
			b = append(b, ", "...)
		}
	}
	b = append(b, peer(req)...)
	b = append(b, "\r\n"...)
	proto := "http"
	if req.TLS != nil {
		proto = "https"
	}
	host := req.Host
	if trusted || f.trustAll {
		if v := req.Header["X-Forwarded-Proto"]; len(v) > 0 && v[0] != "" {
			proto = v[0]
		}
		if v := req.Header["X-Forwarded-Host"]; len(v) > 0 && v[0] != "" {
			host = v[0]
		}
	}
	b = appendHeader(b, "X-Forwarded-Host", host)
	b = appendHeader(b, "X-Forwarded-Proto", proto)
	if v := req.Header["Forwarded"]; trusted {
		for _, x := range v {
			b = appendHeader(b, "Forwarded", x)
		}
	}
	return b
}

// appendValue appends v with CR and LF turned into spaces.
func appendValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			b = append(b, ' ')
		} else {
			b = append(b, c)
		}
	}
	return b
}

// rewrite sets the same headers on ReverseProxy's outbound request.
func (f *forwarding) rewrite(pr *httputil.ProxyRequest) {
	in := pr.In
	trusted := f.trustedPeer(in)
	// Rewrite has already stripped the inbound X-Forwarded-* and Forwarded.
	if prior, ok := in.Header["X-Forwarded-For"]; ok && trusted {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded() // appends the peer, sets -Host and -Proto from the request
	if trusted || f.trustAll {
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
	if v, ok := in.Header["Forwarded"]; ok && trusted {
		pr.Out.Header["Forwarded"] = v
	}
}
