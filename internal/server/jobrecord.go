package server

import (
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

// JobRecorder records the jobs serve runs as they are asked for (each store
// of a POST /v1/deploys) beside the queued ones, so that `slipway jobs` and
// the console list CLI and CI deploys too. *jobs.Queue is one.
type JobRecorder interface {
	Begin(ctx context.Context, j *jobs.Job) (*jobs.Job, error)
	Log(ctx context.Context, id, text string) error
	Attach(ctx context.Context, id, release string) error
	End(ctx context.Context, id, release string, err error) (*jobs.Job, error)
}

var _ JobRecorder = (*jobs.Queue)(nil)

// RecordJobs makes every store of a POST /v1/deploys job a recorded job
// (trigger cli, the caller, status and log). Call it before Serve.
func (s *Server) RecordJobs(r JobRecorder) { s.jobs = r }

// storeJob is the record of one store's deploy; a nil one records nothing.
// Its writes go through one goroutine, in order, so that the deploy never
// waits for jobs.db.
type storeJob struct {
	s      *Server
	id     string
	writes chan func(context.Context)
	done   chan struct{}
	mu     sync.Mutex // guards closed and sends on writes
	closed bool
}

// queue hands a write to the writer; one after end is dropped.
func (sj *storeJob) queue(w func(context.Context)) {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	if !sj.closed {
		sj.writes <- w
	}
}

func (sj *storeJob) writer() {
	defer close(sj.done)
	for w := range sj.writes {
		w(context.Background())
	}
}

// beginStoreJob records a running job for req. Recording is best effort: a
// deploy never fails because its job record could not be written.
func (s *Server) beginStoreJob(ctx context.Context, req pipeline.DeployRequest) *storeJob {
	if s.jobs == nil {
		return nil
	}
	who := "unknown"
	if id := auth.FromContext(ctx); id != nil && id.Name != "" {
		who = id.Name
	}
	j, err := s.jobs.Begin(context.WithoutCancel(ctx), &jobs.Job{Trigger: jobs.TriggerCLI, Who: who, Kind: string(req.Kind),
		Store: req.Store, Commit: req.Commit, Reasons: []string{"requested"}})
	if err != nil {
		s.log.Warn("recording a deploy job", "store", req.Store, "error", err)
		return nil
	}
	sj := &storeJob{s: s, id: j.ID, writes: make(chan func(context.Context), 256), done: make(chan struct{})}
	go sj.writer()
	return sj
}

var releaseLine = regexp.MustCompile(`^release (\S+) \(`)

// event appends a deploy event to the job's log; the release is attached as
// soon as it is recorded, so that recovery can tell whether it went live.
func (sj *storeJob) event(e pipeline.Event) {
	if sj == nil {
		return
	}
	if m := releaseLine.FindStringSubmatch(e.Message); m != nil && e.Stage == "" {
		sj.queue(func(ctx context.Context) { sj.s.jobs.Attach(ctx, sj.id, m[1]) })
	}
	text := e.Message
	if e.Stage != "" {
		text = e.Stage + ": " + text
	}
	sj.queue(func(ctx context.Context) { sj.s.jobs.Log(ctx, sj.id, text) })
}

// end records how the store's deploy ended; a release that did not go live
// fails the job even when Deploy returned no error.
func (sj *storeJob) end(rel *state.Release, err error) {
	if sj == nil {
		return
	}
	sj.mu.Lock()
	sj.closed = true
	close(sj.writes)
	sj.mu.Unlock()
	<-sj.done
	id := ""
	if rel != nil {
		id = rel.ID
		if err == nil && rel.Status != state.StatusLive {
			err = fmt.Errorf("release %s is %s: %s", rel.ID, rel.Status, rel.Error)
		}
	}
	if _, eerr := sj.s.jobs.End(context.Background(), sj.id, id, err); eerr != nil {
		sj.s.log.Warn("recording the end of a deploy job", "job", sj.id, "error", eerr)
	}
}
