package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// start states a release can be in, each reached through legal moves only.
var startStates = []string{"pending", "deploying", "live", "live-finished", "failed", "interrupted", "superseded"}

// reach records a release of store in the named start state.
func reach(t *testing.T, d *DB, store, name string) *Release {
	t.Helper()
	ctx := context.Background()
	newRel := func(st Status) *Release {
		r := &Release{Project: "p", Store: store, Kind: KindBuildDeploy, Status: st, Images: map[string]Image{"web": {Ref: "r", Digest: "sha256:x"}}}
		if err := d.CreateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("reaching %s: %v", name, err)
		}
	}
	switch name {
	case "pending":
		return newRel("")
	case "deploying":
		return newRel(StatusDeploying)
	case "live":
		r := newRel(StatusDeploying)
		must(d.Promote(ctx, r))
		return r
	case "live-finished":
		r := newRel(StatusDeploying)
		must(d.Promote(ctx, r))
		must(d.Finish(ctx, r))
		return r
	case "failed":
		r := newRel(StatusDeploying)
		r.Stage, r.Error = "install", "exit 3"
		must(d.Fail(ctx, r))
		return r
	case "interrupted":
		r := newRel(StatusDeploying)
		must(d.Interrupt(ctx, r))
		return r
	case "superseded":
		r := newRel(StatusDeploying)
		must(d.Promote(ctx, r))
		must(d.Promote(ctx, newRel(StatusDeploying)))
		r, err := d.Release(ctx, r.ID)
		must(err)
		return r
	}
	t.Fatalf("unknown start state %s", name)
	return nil
}

// TestLifecycleTransitions applies every transition to a release in every
// start state: the legal ones move it (and only it, except Promote's
// superseding), the others fail with ErrIllegalTransition and change nothing,
// neither the record nor the caller's copy.
func TestLifecycleTransitions(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	moves := []struct {
		name  string
		do    func(context.Context, *Release) error
		legal []string
		to    Status // "" keeps the status
	}{
		{"fail", d.Fail, []string{"pending", "deploying"}, StatusFailed},
		{"promote", d.Promote, []string{"pending", "deploying"}, StatusLive},
		{"interrupt", d.Interrupt, []string{"pending", "deploying"}, StatusInterrupted},
		{"finish", d.Finish, []string{"live"}, StatusLive},
		{"progress", d.SaveProgress, []string{"pending", "deploying", "live"}, ""},
	}
	n := 0
	for _, m := range moves {
		for _, from := range startStates {
			n++
			store := fmt.Sprintf("s%d", n)
			r := reach(t, d, store, from)
			before, _ := d.Release(ctx, r.ID)
			r.Stage, r.Error = "verify", "note"
			r.Stages = append(r.Stages, Stage{Name: "verify", Status: "ok"})
			err := m.do(ctx, r)
			after, _ := d.Release(ctx, r.ID)
			if !slices.Contains(m.legal, from) {
				if !errors.Is(err, ErrIllegalTransition) || !strings.Contains(err.Error(), r.ID) {
					t.Errorf("%s from %s: %v, want ErrIllegalTransition naming %s", m.name, from, err, r.ID)
				}
				if after.Status != before.Status || after.Stage != before.Stage || len(after.Stages) != len(before.Stages) || !after.FinishedAt.Equal(before.FinishedAt) {
					t.Errorf("%s from %s changed the record: %+v -> %+v", m.name, from, before, after)
				}
				if r.Status != before.Status {
					t.Errorf("%s from %s changed the caller's status to %s", m.name, from, r.Status)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s from %s: %v", m.name, from, err)
				continue
			}
			want := m.to
			if want == "" {
				want = before.Status
			}
			if after.Status != want || r.Status != want || after.Stage != "verify" || len(after.Stages) != len(before.Stages)+1 {
				t.Errorf("%s from %s: stored %s at %q with %d stages (caller %s), want %s", m.name, from, after.Status, after.Stage, len(after.Stages), r.Status, want)
			}
			finishes := m.name == "fail" || m.name == "interrupt" || m.name == "finish"
			if finishes == after.FinishedAt.IsZero() {
				t.Errorf("%s from %s: finished at %v", m.name, from, after.FinishedAt)
			}
		}
	}
}

// Promote supersedes the store's live release in the same transaction, and
// only that store's.
func TestPromoteSupersedes(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	us1, eu1 := reach(t, d, "us", "live"), reach(t, d, "eu", "live")
	us2 := reach(t, d, "us", "deploying")
	if err := d.Promote(ctx, us2); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]Status{us1.ID: StatusSuperseded, us2.ID: StatusLive, eu1.ID: StatusLive} {
		if r, _ := d.Release(ctx, id); r.Status != want {
			t.Errorf("%s is %s, want %s", id, r.Status, want)
		}
	}
	if cur, _ := d.Current(ctx, "us"); cur.ID != us2.ID {
		t.Errorf("current us: %s", cur.ID)
	}
}

// A release starts pending or deploying with a known kind; anything else is
// refused before anything is recorded. An unknown release is ErrNotFound.
func TestCreateRefusesOtherStarts(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	for _, st := range []Status{StatusLive, StatusFailed, StatusSuperseded, StatusInterrupted, "bogus"} {
		r := &Release{Project: "p", Store: "us", Kind: KindBuildDeploy, Status: st}
		if err := d.CreateRelease(ctx, r); !errors.Is(err, ErrIllegalTransition) || !strings.Contains(err.Error(), string(st)) {
			t.Errorf("create as %s: %v", st, err)
		}
	}
	if err := d.CreateRelease(ctx, &Release{Project: "p", Store: "us", Kind: "redeploy"}); err == nil || !strings.Contains(err.Error(), `"redeploy"`) {
		t.Errorf("unknown kind: %v", err)
	}
	for _, k := range Kinds {
		if err := d.CreateRelease(ctx, &Release{Project: "p", Store: "k", Kind: k}); err != nil {
			t.Errorf("kind %s: %v", k, err)
		}
	}
	if rs, _ := d.Releases(ctx, "us", 0); len(rs) != 0 {
		t.Errorf("refused creates recorded %d releases", len(rs))
	}
	ghost := &Release{ID: "us-v9", Store: "us", FinishedAt: time.Now()}
	if err := d.Fail(ctx, ghost); !errors.Is(err, ErrNotFound) {
		t.Errorf("fail of an unknown release: %v", err)
	}
}
