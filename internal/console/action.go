package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// action serves the store page's buttons: deploy, deploy-only, rollback
// (queued as jobs), restart, stop, start (run at once) and cancel.
func (c *Console) action(w http.ResponseWriter, r *http.Request, s *session) {
	store := r.PathValue("store")
	act := r.PostForm.Get("action")
	back := "/stores/" + url.PathEscape(store)
	fail := func(msg string) {
		http.Redirect(w, r, back+"?err="+url.QueryEscape(msg), http.StatusSeeOther)
	}
	if !can(s, auth.ScopeDeploy, store) {
		http.Error(w, "your token may not change store "+store, http.StatusForbidden)
		return
	}
	if cfg := c.config(r.Context()); cfg != nil && cfg.Store(store) != nil && cfg.Store(store).Protected && act != "cancel" && r.PostForm.Get("confirm") != store {
		fail(store + " is protected: type its id to confirm " + act)
		return
	}
	who := "console:" + s.who.Name
	auth.Note(r.Context(), store, "console "+act+" by "+s.who.Name)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Minute)
	defer cancel()
	queue := func(kind, target string) {
		if c.o.Push == nil {
			fail("serve has no job queue")
			return
		}
		j, err := c.o.Push.Submit(ctx, store, kind, target, jobs.TriggerConsole, who)
		if err != nil {
			fail(err.Error())
			return
		}
		http.Redirect(w, r, "/jobs/"+url.PathEscape(j.ID), http.StatusSeeOther)
	}
	op := func(name string, fn func(context.Context, string, func(pipeline.Event)) error) {
		if err := fn(ctx, store, nil); err != nil {
			fail(name + ": " + err.Error())
			return
		}
		http.Redirect(w, r, back+"?msg="+url.QueryEscape(name+": done"), http.StatusSeeOther)
	}
	switch act {
	case "deploy":
		queue(jobs.KindBuildDeploy, "")
	case "deploy-only":
		queue(jobs.KindDeployOnly, "")
	case "rollback":
		rel := r.PostForm.Get("release")
		if rel == "" {
			fail("choose the release to roll back to")
			return
		}
		queue(jobs.KindRollback, rel)
	case "restart":
		op("restart", c.o.Deployer.Restart)
	case "stop":
		op("stop", c.o.Deployer.Stop)
	case "start":
		op("start", c.o.Deployer.Start)
	case "cancel":
		if c.o.Push == nil {
			fail("serve has no job queue")
			return
		}
		id := r.PostForm.Get("job")
		j, err := c.o.Push.Queue.Get(ctx, id)
		if err != nil || j.Store != store {
			fail(fmt.Sprintf("no job %q of %s", id, store))
			return
		}
		if _, err := c.o.Push.Queue.Cancel(ctx, id, who); err != nil {
			fail(err.Error())
			return
		}
		http.Redirect(w, r, "/jobs/"+url.PathEscape(id), http.StatusSeeOther)
	default:
		fail(fmt.Sprintf("unknown action %q", act))
	}
}
