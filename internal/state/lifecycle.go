package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// The release lifecycle, in one place. A release is created pending or
// deploying, then ends failed, interrupted (its process died before the
// cutover) or live; a live release is superseded when the next one goes
// live. The functions in this file are the only code that writes a
// release's status: each checks the status stored in the database (in the
// same transaction as its write) and refuses a move the lifecycle does not
// allow, so a late or repeated write cannot undo a newer one.
//
//	pending ─┬─▶ deploying ─┬─▶ live ──▶ superseded
//	         │              ├─▶ failed
//	         └──────────────┴─▶ interrupted
//
// (pending may also move straight to live, failed or interrupted.)

// Status is where a release is in its lifecycle.
type Status string

// Release statuses.
const (
	StatusPending     Status = "pending"     // recorded, nothing done yet
	StatusDeploying   Status = "deploying"   // stages running
	StatusLive        Status = "live"        // serving traffic (post-deploy may have failed: see Stage/Error)
	StatusFailed      Status = "failed"      // never served; the previous release kept serving
	StatusSuperseded  Status = "superseded"  // served, then replaced by a newer release
	StatusInterrupted Status = "interrupted" // its deploying process died before the cutover
)

// Kind is what a release deploys.
type Kind string

// Release kinds.
const (
	KindBuildDeploy Kind = "build-deploy" // images a build just published
	KindDeployOnly  Kind = "deploy-only"  // the live release's images with today's config and env
	KindRollback    Kind = "rollback"     // an earlier release's images, no hooks
	KindRestart     Kind = "restart"      // new instances of the live release, no hooks
)

// Kinds are the release kinds, in the order the docs list them.
var Kinds = []Kind{KindBuildDeploy, KindDeployOnly, KindRollback, KindRestart}

// ErrIllegalTransition marks a status change the lifecycle does not allow.
var ErrIllegalTransition = errors.New("illegal release transition")

// A transition is one named move: from any of From to To ("" keeps the
// status). Unfinished limits a move out of live to a release whose deploy
// has not finished (post-deploy and verify still to record).
type transition struct {
	name       string
	from       []Status
	to         Status
	unfinished bool
}

var (
	moveFail      = transition{name: "fail", from: []Status{StatusPending, StatusDeploying}, to: StatusFailed}
	movePromote   = transition{name: "promote", from: []Status{StatusPending, StatusDeploying}, to: StatusLive}
	moveInterrupt = transition{name: "interrupt", from: []Status{StatusPending, StatusDeploying}, to: StatusInterrupted}
	moveFinish    = transition{name: "finish", from: []Status{StatusLive}, to: StatusLive, unfinished: true}
	moveProgress  = transition{name: "record progress of", from: []Status{StatusPending, StatusDeploying, StatusLive}, unfinished: true}
)

// check refuses the move from a stored status (finished: the release's
// deploy already recorded its end).
func (t transition) check(id string, from Status, finished bool) error {
	if !slices.Contains(t.from, from) {
		return fmt.Errorf("%w: cannot %s release %s: it is %s (only %s can)", ErrIllegalTransition, t.name, id, from, joinStatuses(t.from))
	}
	if t.unfinished && from == StatusLive && finished {
		return fmt.Errorf("%w: cannot %s release %s: it is live and its deploy already finished", ErrIllegalTransition, t.name, id)
	}
	return nil
}

func joinStatuses(ss []Status) string {
	out := ""
	for i, s := range ss {
		switch {
		case i == 0:
		case i == len(ss)-1:
			out += " or "
		default:
			out += ", "
		}
		out += string(s)
	}
	return out
}

// CreateRelease records r with the next number for its store and sets r.ID
// and r.Number. A release starts pending (the default) or deploying; its
// kind must be one of Kinds.
func (d *DB) CreateRelease(ctx context.Context, r *Release) error {
	if r.Status == "" {
		r.Status = StatusPending
	}
	if r.Status != StatusPending && r.Status != StatusDeploying {
		return fmt.Errorf("%w: cannot create a release of %s as %s (a release starts pending or deploying)", ErrIllegalTransition, r.Store, r.Status)
	}
	if !slices.Contains(Kinds, r.Kind) {
		return fmt.Errorf("recording release for %s: kind %q is not one of %v", r.Store, r.Kind, Kinds)
	}
	tx, end, err := d.beginTx(ctx)
	if err != nil {
		return fmt.Errorf("recording release for %s: %w", r.Store, err)
	}
	defer end()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(number), 0) FROM releases WHERE store = ?", r.Store).Scan(&n); err != nil {
		return fmt.Errorf("recording release for %s: %w", r.Store, err)
	}
	r.Number = n + 1
	r.ID = fmt.Sprintf("%s-v%d", r.Store, r.Number)
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	images, stages, names := mustJSON(r.Images), mustJSON(r.Stages), mustJSON(r.EnvNames)
	_, err = tx.ExecContext(ctx, `INSERT INTO releases (id, project, store, number, commit_sha, kind, destructive, status, stage, error,
		images, env_hash, env_names, stages, host, pid, created_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Project, r.Store, r.Number, r.Commit, r.Kind, r.Destructive, r.Status, r.Stage, r.Error,
		images, r.EnvHash, names, stages, r.Host, r.PID, r.CreatedAt.UnixNano(), unixOrZero(r.FinishedAt))
	if err != nil {
		return fmt.Errorf("recording release for %s: %w", r.Store, err)
	}
	return tx.Commit()
}

// Fail records that r never went live: its Stage and Error say where and
// why; FinishedAt defaults to now.
func (d *DB) Fail(ctx context.Context, r *Release) error {
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now()
	}
	return d.move(ctx, r, moveFail, nil)
}

// Promote records r live (at the swap, or on recovery of a release that
// swapped before its process died) and, in the same transaction, the
// store's previously live release superseded.
func (d *DB) Promote(ctx context.Context, r *Release) error {
	return d.move(ctx, r, movePromote, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE releases SET status=? WHERE store=? AND status=? AND id<>?", StatusSuperseded, r.Store, StatusLive, r.ID)
		return err
	})
}

// Interrupt records that the process deploying r died before the cutover
// (recovery): the previous release kept serving.
func (d *DB) Interrupt(ctx context.Context, r *Release) error {
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now()
	}
	return d.move(ctx, r, moveInterrupt, nil)
}

// Finish records the end of a live release's deploy (post-deploy and
// verify, or their interruption on recovery): Stage and Error say what
// failed after the cutover, if anything; FinishedAt defaults to now.
func (d *DB) Finish(ctx context.Context, r *Release) error {
	if r.FinishedAt.IsZero() {
		r.FinishedAt = time.Now()
	}
	return d.move(ctx, r, moveFinish, nil)
}

// SaveProgress records r's stage results (stage, error, images, stages,
// env) while its deploy runs; it never changes the status or finish time.
func (d *DB) SaveProgress(ctx context.Context, r *Release) error {
	return d.move(ctx, r, moveProgress, nil)
}

// move applies transition t to r: it reads r's stored status, refuses an
// illegal move (r unchanged), then writes r's mutable fields with the new
// status, running also (if set) in the same transaction. r takes the new status
// even when the write itself fails (a full disk), so that a caller can keep
// r and retry the same move later.
func (d *DB) move(ctx context.Context, r *Release, t transition, also func(*sql.Tx) error) error {
	tx, end, err := d.beginTx(ctx)
	if err != nil {
		return d.moveFailed(r, t, err)
	}
	defer end()
	var from Status
	var finished int64
	err = tx.QueryRowContext(ctx, "SELECT status, finished_at FROM releases WHERE id=?", r.ID).Scan(&from, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("cannot %s release %s: %w", t.name, r.ID, ErrNotFound)
	}
	if err != nil {
		return d.moveFailed(r, t, err)
	}
	if err := t.check(r.ID, from, finished != 0); err != nil {
		return err
	}
	to := t.to
	if to == "" {
		to = from
	}
	r.Status = to
	if also != nil {
		if err := also(tx); err != nil {
			return d.moveFailed(r, t, err)
		}
	}
	finishedAt := unixOrZero(r.FinishedAt)
	if t.to == "" {
		finishedAt = finished // progress never moves the finish time
	}
	_, err = tx.ExecContext(ctx, `UPDATE releases SET status=?, stage=?, error=?, images=?, stages=?, env_hash=?, env_names=?, finished_at=? WHERE id=?`,
		to, r.Stage, r.Error, mustJSON(r.Images), mustJSON(r.Stages), r.EnvHash, mustJSON(r.EnvNames), finishedAt, r.ID)
	if err != nil {
		return d.moveFailed(r, t, err)
	}
	if err := tx.Commit(); err != nil {
		return d.moveFailed(r, t, err)
	}
	return nil
}

// moveFailed is a write that failed for another reason than the lifecycle:
// r shows the status it is meant to reach.
func (d *DB) moveFailed(r *Release, t transition, err error) error {
	if t.to != "" {
		r.Status = t.to
	}
	return fmt.Errorf("cannot %s release %s: %w", t.name, r.ID, err)
}
