package cli

import (
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/slipway-dev/slipway/internal/edge"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/server"
)

// tlsFlags are serve's HTTPS, ACME and hardening flags.
type tlsFlags struct {
	https        string
	email        string
	ca           string
	staging      bool
	caRoot       string
	challenges   []string
	publicIPs    []string
	noDNSCheck   bool
	verifyRoots  string
	idle         time.Duration
	readHeader   time.Duration
	writeStall   time.Duration
	maxHeader    int
	maxConnsIP   int
	maxConnsHost int
	apiDomain    string
}

func (f *tlsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.https, "https", "", "serve every store domain over TLS on this address (e.g. 0.0.0.0:443), with certificates from the ACME CA; plain HTTP then redirects to it")
	fs.StringVar(&f.email, "acme-email", "", "contact address of the ACME account (expiry warnings from the CA)")
	fs.StringVar(&f.ca, "acme-ca", edge.LetsEncryptProduction, "ACME directory URL")
	fs.BoolVar(&f.staging, "acme-staging", false, "use Let's Encrypt's staging CA (untrusted certificates, generous rate limits)")
	fs.StringVar(&f.caRoot, "acme-ca-root", "", "PEM file of roots to trust for the ACME server itself (a private ACME CA)")
	fs.StringSliceVar(&f.challenges, "acme-challenges", []string{edge.ChallengeHTTP, edge.ChallengeALPN}, "ACME challenges to answer")
	fs.StringSliceVar(&f.publicIPs, "public-ip", nil, "addresses that count as this host when checking where a domain resolves (behind NAT or a load balancer)")
	fs.BoolVar(&f.noDNSCheck, "skip-dns-check", false, "order certificates without first checking that the domain resolves to this host")
	fs.StringVar(&f.apiDomain, "api-domain", "", "serve --api over TLS with an automatic certificate for this name (needs --https)")
	fs.StringVar(&f.verifyRoots, "verify-roots", "", "PEM file of extra roots the verify stage accepts certificates from")
	fs.DurationVar(&f.idle, "idle-timeout", proxy.DefaultIdleTimeout, "close keep-alive connections idle this long")
	fs.DurationVar(&f.readHeader, "read-header-timeout", proxy.DefaultReadHeaderTimeout, "time a client has to send its request headers")
	fs.DurationVar(&f.writeStall, "write-stall-timeout", proxy.DefaultWriteStallTimeout, "cut a connection whose client has not read for this long (streams that keep moving are not affected)")
	fs.IntVar(&f.maxHeader, "max-header-bytes", proxy.DefaultMaxHeaderBytes, "largest request head accepted (431 past it)")
	fs.IntVar(&f.maxConnsIP, "max-conns-per-ip", proxy.DefaultMaxConnsPerIP, "connections one client IP may hold open (-1: no limit)")
	fs.IntVar(&f.maxConnsHost, "max-conns", 0, "connections in all (default 90% of the open-file limit; -1: no limit)")
}

// options checks the flags and turns them into server options.
func (f *tlsFlags) options() (server.TLSOptions, error) {
	o := server.TLSOptions{HTTPSAddr: f.https, ACMEEmail: f.email, ACMECA: f.ca, ACMECARoot: f.caRoot,
		SkipDNSCheck: f.noDNSCheck, VerifyRoots: f.verifyRoots, APIDomain: f.apiDomain,
		Limits: proxy.Limits{IdleTimeout: f.idle, ReadHeaderTimeout: f.readHeader, WriteStallTimeout: f.writeStall,
			MaxHeaderBytes: f.maxHeader, MaxConnsPerIP: f.maxConnsIP, MaxConns: f.maxConnsHost}}
	if f.staging {
		if f.ca != edge.LetsEncryptProduction {
			return o, usagef("--acme-staging and --acme-ca exclude each other")
		}
		o.ACMECA = edge.LetsEncryptStaging
	}
	if f.https != "" {
		if _, _, err := net.SplitHostPort(f.https); err != nil {
			return o, usagef("--https %q: want host:port, e.g. 0.0.0.0:443", f.https)
		}
	}
	if u, err := url.Parse(o.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
		return o, usagef("--acme-ca %q: want an https:// ACME directory URL", o.ACMECA)
	}
	for _, p := range []struct{ flag, path string }{{"--acme-ca-root", f.caRoot}, {"--verify-roots", f.verifyRoots}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return o, usagef("%s: %v", p.flag, err)
		}
	}
	for _, c := range f.challenges {
		c = strings.ToLower(strings.TrimSpace(c))
		if c != edge.ChallengeHTTP && c != edge.ChallengeALPN {
			return o, usagef("--acme-challenges: %q is not http-01 or tls-alpn-01", c)
		}
		if !slices.Contains(o.Challenges, c) {
			o.Challenges = append(o.Challenges, c)
		}
	}
	if len(o.Challenges) == 0 {
		return o, usagef("--acme-challenges: name at least one of http-01, tls-alpn-01")
	}
	for _, s := range f.publicIPs {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return o, usagef("--public-ip %q is not an IP address", s)
		}
		o.PublicIPs = append(o.PublicIPs, ip)
	}
	if f.maxHeader < 1024 && f.maxHeader >= 0 {
		return o, usagef("--max-header-bytes %d: at least 1024", f.maxHeader)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--idle-timeout", f.idle}, {"--read-header-timeout", f.readHeader}, {"--write-stall-timeout", f.writeStall}} {
		if d.v <= 0 {
			return o, usagef("%s %s: must be positive", d.flag, d.v)
		}
	}
	return o, nil
}
