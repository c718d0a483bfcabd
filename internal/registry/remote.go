package registry

import (
	"bytes"
	"context"
	"errors"
	"github.com/slipway-dev/slipway/internal/regpolicy"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// Remote publishes to an OCI distribution registry.
//
// Publish first GETs the manifest under the reference; if its config digest
// equals the image's, the image is up to date and nothing is written (no
// blob uploads, no manifest PUT). Otherwise every blob is HEAD-checked and
// only missing ones are uploaded; layers of a base image read from the same
// registry are cross-repository mounted instead (go-containerregistry does
// this for layers that come from remote.Image). The manifest goes last.
//
// Requests that fail with 408, 429, 5xx or a network error (refused, reset,
// timeout, EOF) are retried with exponential backoff (WithRetry); other 4xx
// answers fail at once with the registry's own message. The whole publish is
// bounded by WithTimeout.
type Remote struct {
	o remoteOptions
}

var (
	_ Publisher = (*Remote)(nil)
	_ Checker   = (*Remote)(nil)
)

// RemoteOption configures NewRemote.
type RemoteOption func(*remoteOptions)

type remoteOptions struct {
	user, password string
	keychain       authn.Keychain
	insecure       bool
	transport      http.RoundTripper
	attempts       int
	backoff        time.Duration
	timeout        time.Duration
	jobs           int
	progress       func(Progress)
	userAgent      string
}

// WithBasicAuth sets the username and password (callers read them from
// SLIPWAY_REGISTRY_USERNAME / SLIPWAY_REGISTRY_PASSWORD or stdin, never argv).
// They win over the keychain. The default is no explicit credentials.
func WithBasicAuth(user, password string) RemoteOption {
	return func(o *remoteOptions) { o.user, o.password = user, password }
}

// WithKeychain sets where credentials come from when WithBasicAuth is not
// given. The default is authn.DefaultKeychain: the Docker config file
// ($DOCKER_CONFIG/config.json) including credential helpers.
func WithKeychain(k authn.Keychain) RemoteOption {
	return func(o *remoteOptions) { o.keychain = k }
}

// WithInsecure allows plain HTTP to any host. The default allows it only for
// loopback hosts (127.0.0.0/8, ::1, localhost); others must speak HTTPS.
func WithInsecure(insecure bool) RemoteOption {
	return func(o *remoteOptions) { o.insecure = insecure }
}

// WithTransport sets the HTTP transport under the retry and scheme policy.
// The default is go-containerregistry's remote.DefaultTransport.
func WithTransport(t http.RoundTripper) RemoteOption {
	return func(o *remoteOptions) { o.transport = t }
}

// WithRetry sets how many times a retryable request is tried in all, and
// the first wait (doubling after each try, ±10% jitter). The default is 4
// attempts from 250ms: 0.25+0.5+1s = under 2s of waiting per request.
func WithRetry(attempts int, initial time.Duration) RemoteOption {
	return func(o *remoteOptions) {
		if attempts < 1 {
			attempts = 1
		}
		o.attempts, o.backoff = attempts, initial
	}
}

// WithTimeout bounds one Publish or Exists in total. The default is 30 minutes.
func WithTimeout(d time.Duration) RemoteOption {
	return func(o *remoteOptions) { o.timeout = d }
}

// WithJobs sets how many blobs upload at once. The default is 4.
func WithJobs(n int) RemoteOption {
	return func(o *remoteOptions) {
		if n < 1 {
			n = 1
		}
		o.jobs = n
	}
}

// WithProgress sets a function called as a publish advances: at the start,
// at most every 100ms while bytes flow, when each blob is done, and at the
// end. Calls are serialised. The default is no reporting.
func WithProgress(f func(Progress)) RemoteOption {
	return func(o *remoteOptions) { o.progress = f }
}

// WithUserAgent sets the User-Agent prefix. The default is "slipway".
func WithUserAgent(ua string) RemoteOption {
	return func(o *remoteOptions) { o.userAgent = ua }
}

// NewRemote returns a Publisher for OCI registries.
func NewRemote(opts ...RemoteOption) *Remote {
	o := remoteOptions{
		keychain:  authn.DefaultKeychain,
		transport: remote.DefaultTransport,
		attempts:  4,
		backoff:   250 * time.Millisecond,
		timeout:   30 * time.Minute,
		jobs:      4,
		userAgent: "slipway",
	}
	for _, opt := range opts {
		opt(&o)
	}
	return &Remote{o: o}
}

func (r *Remote) secrets() []string { return secretsFor(r.o.user, r.o.password) }

func (r *Remote) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(regpolicy.Transport(r.o.transport, r.o.insecure)),
		remote.WithRetryBackoff(remote.Backoff{Duration: r.o.backoff, Factor: 2, Jitter: 0.1, Steps: r.o.attempts}),
		remote.WithRetryPredicate(retryable),
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout),
		remote.WithJobs(r.o.jobs),
		remote.WithUserAgent(r.o.userAgent),
	}
	if r.o.user != "" || r.o.password != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.o.user, Password: r.o.password}))
	} else {
		opts = append(opts, remote.WithAuthFromKeychain(r.o.keychain))
	}
	return opts
}

// retryable: registry answers that say "try later", and network failures
// that a restarting or flaky registry produces. Never a cancelled context.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrPlainHTTP) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.Temporary()
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, io.ErrUnexpectedEOF, io.EOF, net.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

// Exists resolves ref with a HEAD request.
func (r *Remote) Exists(ctx context.Context, ref name.Reference) (v1.Hash, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	nref, err := normalize(ref, r.o.insecure)
	if err != nil {
		return v1.Hash{}, false, newError(ref, "parsing the reference", err, nil)
	}
	desc, err := remote.Head(nref, r.options(ctx)...)
	if isNotFound(err) {
		return v1.Hash{}, false, nil
	}
	if err != nil {
		return v1.Hash{}, false, newError(ref, "checking the registry", err, r.secrets())
	}
	return desc.Digest, true, nil
}

// UpToDate reports whether ref already names an image with img's config
// (the same diff IDs, entrypoint, env, labels...), and its digest. The
// comparison needs only img's config, so an image from image.Build is not
// compressed for it. The digest can differ from img's own when the blobs
// there were compressed differently; it is the one to deploy.
func (r *Remote) UpToDate(ctx context.Context, ref name.Reference, img v1.Image) (name.Digest, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	nref, err := normalize(ref, r.o.insecure)
	if err != nil {
		return name.Digest{}, false, newError(ref, "parsing the reference", err, nil)
	}
	return r.upToDate(ctx, ref, nref, img)
}

func (r *Remote) upToDate(ctx context.Context, ref, nref name.Reference, img v1.Image) (name.Digest, bool, error) {
	want, err := img.ConfigName()
	if err != nil {
		return name.Digest{}, false, newError(ref, "reading the image config", err, nil)
	}
	desc, err := remote.Get(nref, r.options(ctx)...)
	if isNotFound(err) {
		return name.Digest{}, false, nil
	}
	if err != nil {
		return name.Digest{}, false, newError(ref, "checking the registry", err, r.secrets())
	}
	if !desc.MediaType.IsImage() {
		return name.Digest{}, false, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil || m.Config.Digest != want {
		return name.Digest{}, false, nil
	}
	return nref.Context().Digest(desc.Digest.String()), true, nil
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// Publish pushes img to ref unless it is up to date there (see Remote).
func (r *Remote) Publish(ctx context.Context, ref name.Reference, img v1.Image) (name.Digest, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	nref, err := normalize(ref, r.o.insecure)
	if err != nil {
		return name.Digest{}, newError(ref, "parsing the reference", err, nil)
	}
	if d, ok, err := r.upToDate(ctx, ref, nref, img); err != nil || ok {
		if ok {
			r.reportUpToDate(ref)
		}
		return d, err
	}

	blobs, err := blobsOf(img)
	if err != nil {
		return name.Digest{}, newError(ref, "reading the image", err, nil)
	}
	tr := newTracker(ref.String(), blobs, r.o.progress)
	pusher, err := remote.NewPusher(r.options(ctx)...)
	if err != nil {
		return name.Digest{}, newError(ref, "preparing the upload", err, nil)
	}
	repo := nref.Context()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.o.jobs)
	for i, b := range blobs {
		g.Go(func() error {
			if err := pusher.Upload(gctx, repo, tr.wrap(i, b.layer)); err != nil {
				return newError(ref, "uploading "+b.what+" "+b.digest.String(), err, r.secrets())
			}
			tr.blobDone(i)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return name.Digest{}, err
	}
	if err := pusher.Put(ctx, nref, img); err != nil {
		return name.Digest{}, newError(ref, "writing the manifest", err, r.secrets())
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, newError(ref, "reading the image digest", err, nil)
	}
	tr.finish()
	return repo.Digest(d.String()), nil
}

func (r *Remote) reportUpToDate(ref name.Reference) {
	if r.o.progress == nil {
		return
	}
	r.o.progress(Progress{Ref: ref.String(), UpToDate: true, Finished: true})
}

// blob is one thing to upload: a layer or the config.
type blob struct {
	layer  v1.Layer
	digest v1.Hash
	size   int64
	what   string
}

// blobsOf lists the image's distinct blobs, layers first, config last.
func blobsOf(img v1.Image) ([]blob, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{}
	var out []blob
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		size, err := l.Size()
		if err != nil {
			return nil, err
		}
		out = append(out, blob{layer: l, digest: d, size: size, what: "layer"})
	}
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return nil, err
	}
	d, err := cl.Digest()
	if err != nil {
		return nil, err
	}
	size, err := cl.Size()
	if err != nil {
		return nil, err
	}
	return append(out, blob{layer: cl, digest: d, size: size, what: "config"}), nil
}

// Progress is a snapshot of one publish.
type Progress struct {
	// Ref is the reference being published.
	Ref string
	// BytesDone and BytesTotal count compressed bytes of all the image's
	// blobs; blobs the registry already has count as done when checked.
	BytesDone, BytesTotal int64
	// BlobsDone and BlobsTotal count layers plus the config.
	BlobsDone, BlobsTotal int
	// UpToDate: the registry already had the image; nothing was sent.
	UpToDate bool
	// Finished is set on the last call for a successful publish.
	Finished bool
}

// tracker turns reads of blob readers into Progress calls.
type tracker struct {
	mu    sync.Mutex
	f     func(Progress)
	p     Progress
	sizes []int64
	read  []int64 // bytes read by the latest reader of each blob
	done  []bool
	last  time.Time
}

func newTracker(ref string, blobs []blob, f func(Progress)) *tracker {
	t := &tracker{f: f, sizes: make([]int64, len(blobs)), read: make([]int64, len(blobs)), done: make([]bool, len(blobs))}
	t.p.Ref = ref
	t.p.BlobsTotal = len(blobs)
	for i, b := range blobs {
		t.sizes[i] = b.size
		t.p.BytesTotal += b.size
	}
	if f != nil {
		f(t.p)
	}
	return t
}

// wrap counts bytes read from the layer's blob. Layers from a remote image
// are passed through untouched: go-containerregistry mounts them only if it
// sees their own type.
func (t *tracker) wrap(i int, l v1.Layer) v1.Layer {
	if t.f == nil {
		return l
	}
	if _, ok := l.(*remote.MountableLayer); ok {
		return l
	}
	return &countedLayer{Layer: l, t: t, i: i}
}

func (t *tracker) add(i int, n int64, reset bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if reset {
		t.read[i] = 0
	}
	t.read[i] += n
	if time.Since(t.last) >= 100*time.Millisecond {
		t.emitLocked()
	}
}

func (t *tracker) blobDone(i int) {
	if t.f == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done[i] = true
	t.emitLocked()
}

func (t *tracker) finish() {
	if t.f == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Finished = true
	t.emitLocked()
}

func (t *tracker) emitLocked() {
	var bytes int64
	blobs := 0
	for i, s := range t.sizes {
		switch {
		case t.done[i]:
			bytes += s
			blobs++
		default:
			bytes += min(t.read[i], s)
		}
	}
	t.p.BytesDone, t.p.BlobsDone = bytes, blobs
	t.last = time.Now()
	t.f(t.p)
}

type countedLayer struct {
	v1.Layer
	t *tracker
	i int
}

func (c *countedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	c.t.add(c.i, 0, true)
	return &countingReader{ReadCloser: rc, c: c}, nil
}

type countingReader struct {
	io.ReadCloser
	c *countedLayer
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.c.t.add(r.c.i, int64(n), false)
	}
	return n, err
}

// Image returns the image ref names in the registry (lazily: blobs are fetched when read).
func (r *Remote) Image(ctx context.Context, ref name.Reference) (v1.Image, error) {
	nref, err := normalize(ref, r.o.insecure)
	if err != nil {
		return nil, newError(ref, "parsing the reference", err, nil)
	}
	img, err := remote.Image(nref, r.options(ctx)...)
	if err != nil {
		return nil, newError(ref, "reading the image", err, r.secrets())
	}
	return img, nil
}
