package proxy

import (
	"bufio"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are written in the Prometheus text exposition format by hand
// rather than with prometheus/client_golang: the router's figures already
// live in per-service atomics (counters), so a request costs a few atomic
// adds and no label lookup, and the binary gains no dependency tree
// (client_golang brings client_model, common, procfs and protobuf). The
// format is small and stable (text format 0.0.4).

// latencyBuckets are the upper bounds of the request duration histogram.
var latencyBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// latency is a histogram of request durations, updated with atomics.
type latency struct {
	buckets [len(latencyBuckets) + 1]atomic.Uint64 // not cumulative; the last is +Inf
	sum     atomic.Int64                           // nanoseconds
	bytes   atomic.Uint64                          // response body bytes
}

func (l *latency) observe(d time.Duration, n int64) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	l.buckets[i].Add(1)
	l.sum.Add(int64(d))
	if n > 0 {
		l.bytes.Add(uint64(n))
	}
}

// certExpiry holds the expiry the TLS side reports per certificate name.
type certExpiry struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// SetCertificateExpiry records when the certificate serving name expires,
// for slipway_certificate_expiry_timestamp_seconds. A zero time removes it.
func (r *Router) SetCertificateExpiry(name string, notAfter time.Time) {
	r.certs.mu.Lock()
	defer r.certs.mu.Unlock()
	if r.certs.m == nil {
		r.certs.m = map[string]time.Time{}
	}
	if notAfter.IsZero() {
		delete(r.certs.m, name)
		return
	}
	r.certs.m[name] = notAfter
}

// MetricsHandler serves the router's metrics in the Prometheus text format.
// extra, if set, appends more families (the server's release counts).
func (r *Router) MetricsHandler(extra func(io.Writer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		bw := bufio.NewWriter(w)
		r.WriteMetrics(bw)
		if extra != nil {
			extra(bw)
		}
		bw.Flush()
	})
}

// WriteMetrics writes every router metric family.
func (r *Router) WriteMetrics(w io.Writer) {
	type svcSnap struct {
		store, app string
		c          *counters
		targets    []TargetStatus
		draining   int
		last       time.Time
	}
	r.mu.Lock()
	snaps := make([]svcSnap, 0, len(r.services))
	for _, s := range r.services {
		st, app := SplitService(s.name)
		sn := svcSnap{store: st, app: app, c: &s.counters, draining: len(s.draining), last: s.lastDeploy}
		for _, t := range s.active.Load().targets {
			sn.targets = append(sn.targets, targetStatus(t))
		}
		snaps = append(snaps, sn)
	}
	r.mu.Unlock()
	sort.Slice(snaps, func(i, j int) bool {
		return snaps[i].store+"/"+snaps[i].app < snaps[j].store+"/"+snaps[j].app
	})

	m := &expo{w: w}
	m.family("slipway_http_requests_total", "counter", "Requests the router answered, by store, app and status class (499: the client left first).")
	for _, s := range snaps {
		c := s.c
		for i, code := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
			m.sample("slipway_http_requests_total", c.class[i+1].Load(), "store", s.store, "app", s.app, "code", code)
		}
		m.sample("slipway_http_requests_total", c.clientGone.Load(), "store", s.store, "app", s.app, "code", "499")
	}
	m.sample("slipway_http_requests_total", r.unrouted.Load(), "store", "", "app", "", "code", "404")

	m.family("slipway_http_request_duration_seconds", "histogram", "Time from the request's arrival to the end of its answer, by store and app.")
	for _, s := range snaps {
		var cum uint64
		for i, b := range latencyBuckets {
			cum += s.c.lat.buckets[i].Load()
			m.sample("slipway_http_request_duration_seconds_bucket", cum, "store", s.store, "app", s.app, "le", strconv.FormatFloat(b.Seconds(), 'g', -1, 64))
		}
		cum += s.c.lat.buckets[len(latencyBuckets)].Load()
		m.sample("slipway_http_request_duration_seconds_bucket", cum, "store", s.store, "app", s.app, "le", "+Inf")
		m.sampleFloat("slipway_http_request_duration_seconds_sum", time.Duration(s.c.lat.sum.Load()).Seconds(), "store", s.store, "app", s.app)
		m.sample("slipway_http_request_duration_seconds_count", cum, "store", s.store, "app", s.app)
	}

	m.family("slipway_http_response_bytes_total", "counter", "Response body bytes sent, by store and app.")
	for _, s := range snaps {
		m.sample("slipway_http_response_bytes_total", s.c.lat.bytes.Load(), "store", s.store, "app", s.app)
	}

	m.family("slipway_target_up", "gauge", "1 for an active target in rotation, 0 for one the health monitor took out.")
	for _, s := range snaps {
		for _, t := range s.targets {
			up := uint64(0)
			if t.Healthy {
				up = 1
			}
			m.sample("slipway_target_up", up, "store", s.store, "app", s.app, "target", t.Address)
		}
	}
	m.family("slipway_targets_draining", "gauge", "Replaced targets still finishing their requests.")
	for _, s := range snaps {
		m.sample("slipway_targets_draining", uint64(s.draining), "store", s.store, "app", s.app)
	}
	m.family("slipway_last_deploy_timestamp_seconds", "gauge", "When the app's routes last swapped (Unix time).")
	for _, s := range snaps {
		if !s.last.IsZero() {
			m.sampleFloat("slipway_last_deploy_timestamp_seconds", float64(s.last.UnixMilli())/1000, "store", s.store, "app", s.app)
		}
	}

	r.certs.mu.Lock()
	names := make([]string, 0, len(r.certs.m))
	for n := range r.certs.m {
		names = append(names, n)
	}
	sort.Strings(names)
	m.family("slipway_certificate_expiry_timestamp_seconds", "gauge", "When each served certificate expires (Unix time).")
	for _, n := range names {
		m.sampleFloat("slipway_certificate_expiry_timestamp_seconds", float64(r.certs.m[n].Unix()), "name", n)
	}
	r.certs.mu.Unlock()
	r.writeCacheMetrics(m)
}

// SplitService splits "us/storefront" into store "us" and app "storefront".
func SplitService(name string) (store, app string) {
	if s, a, ok := strings.Cut(name, "/"); ok {
		return s, a
	}
	return "", name
}

// expo writes the text exposition format.
type expo struct {
	w io.Writer
}

// Family writes the HELP and TYPE lines of a metric family.
func (m *expo) family(name, typ, help string) {
	io.WriteString(m.w, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n")
}

func (m *expo) sample(name string, v uint64, labels ...string) {
	m.line(name, strconv.FormatUint(v, 10), labels)
}

func (m *expo) sampleFloat(name string, v float64, labels ...string) {
	m.line(name, strconv.FormatFloat(v, 'g', -1, 64), labels)
}

func (m *expo) line(name, value string, labels []string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i])
			b.WriteString(`="`)
			b.WriteString(labelEscaper.Replace(labels[i+1]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
	io.WriteString(m.w, b.String())
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// MetricsWriter lets other packages append families in the same format.
type MetricsWriter struct{ m expo }

// NewMetricsWriter writes to w.
func NewMetricsWriter(w io.Writer) *MetricsWriter { return &MetricsWriter{expo{w: w}} }

// Family starts a metric family.
func (mw *MetricsWriter) Family(name, typ, help string) { mw.m.family(name, typ, help) }

// Sample writes one sample; labels are name, value pairs.
func (mw *MetricsWriter) Sample(name string, v float64, labels ...string) {
	mw.m.sampleFloat(name, v, labels...)
}
