package registry

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Call is one Publish seen by a Recorder.
type Call struct {
	Ref    string
	Digest name.Digest
	Err    error
}

// Recorder wraps a Publisher and remembers every call, for tests and for
// reports ("published 3 images, 1 failed").
type Recorder struct {
	Publisher
	mu    sync.Mutex
	calls []Call
}

var _ Publisher = (*Recorder)(nil)

// Record wraps p.
func Record(p Publisher) *Recorder { return &Recorder{Publisher: p} }

// Publish delegates to the wrapped Publisher and records the outcome.
func (r *Recorder) Publish(ctx context.Context, ref name.Reference, img v1.Image) (name.Digest, error) {
	d, err := r.Publisher.Publish(ctx, ref, img)
	r.mu.Lock()
	r.calls = append(r.calls, Call{Ref: ref.String(), Digest: d, Err: err})
	r.mu.Unlock()
	return d, err
}

// Calls returns a copy of the calls so far, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}
