package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/slipway-dev/slipway/internal/state"
)

// DefaultMinFree is the free space a job needs on the state dir's file
// system before it starts (serve --min-free-space).
const DefaultMinFree = 512 << 20

// ErrLowDisk marks a job refused because the disk is (nearly) full.
var ErrLowDisk = errors.New("not enough free disk space")

// checkDisk refuses to start a job when the file system of the state dir has
// less than MinFree bytes free: a job that runs out of space midway can leave
// half-written images and records. MinFree < 0 turns the check off.
func (d *Deployer) checkDisk() error {
	need := d.MinFree
	if need == 0 {
		need = DefaultMinFree
	}
	if need < 0 || d.DataDir == "" {
		return nil
	}
	free, err := freeBytes(d.DataDir)
	if err != nil {
		return nil // unknown: let the job run (and fail loudly if the disk is full)
	}
	if free < uint64(need) {
		return fmt.Errorf("%w on %s: %s free, a job needs %s (serve --min-free-space); free some (slipway prune) and retry",
			ErrLowDisk, d.DataDir, human(free), human(uint64(need)))
	}
	return nil
}

func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// recordOrDefer writes a release record; when that fails (a full disk, a
// locked database) the write is kept and retried by the supervisor until it
// lands, so no release stays "deploying" once its deploy is over.
func (d *Deployer) recordOrDefer(ctx context.Context, what string, rel *state.Release, write func(context.Context, *state.Release) error) error {
	err := write(context.WithoutCancel(ctx), rel)
	if err == nil {
		return nil
	}
	snapshot := *rel
	d.mu.Lock()
	d.pending = append(d.pending, pendingRecord{what: what, rel: &snapshot, write: write})
	d.mu.Unlock()
	return fmt.Errorf("%s (kept; retried until it is recorded): %w", what, err)
}

type pendingRecord struct {
	what  string
	rel   *state.Release
	write func(context.Context, *state.Release) error
}

// retryPending writes the records that could not be written at once, in order.
func (d *Deployer) retryPending(ctx context.Context, log *slog.Logger) {
	d.mu.Lock()
	todo := d.pending
	d.pending = nil
	d.mu.Unlock()
	for i, p := range todo {
		err := p.write(ctx, p.rel)
		if errors.Is(err, state.ErrIllegalTransition) {
			// The release moved on meanwhile (recovery by another serve): the
			// stored state is newer than this record; retrying cannot help.
			log.Warn("dropping a late release record", "release", p.rel.ID, "what", p.what, "error", err)
			continue
		}
		if err != nil {
			d.mu.Lock()
			d.pending = append(todo[i:], d.pending...)
			d.mu.Unlock()
			log.Warn("still cannot record a release", "release", p.rel.ID, "what", p.what, "error", err)
			return
		}
		log.Info("recorded late", "release", p.rel.ID, "what", p.what, "status", p.rel.Status)
	}
}

// PendingRecords is how many release records wait to be written.
func (d *Deployer) PendingRecords() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

func (d *Deployer) recFail(ctx context.Context, r *state.Release) error {
	if d.failRelease != nil {
		return d.failRelease(ctx, r)
	}
	return d.State.Fail(ctx, r)
}

func (d *Deployer) recPromote(ctx context.Context, r *state.Release) error {
	if d.promote != nil {
		return d.promote(ctx, r)
	}
	return d.State.Promote(ctx, r)
}
