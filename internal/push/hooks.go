package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/source"
)

// AnswerBudget is how long a webhook may take to answer (GitHub gives up after 10 s; we aim far lower).
const AnswerBudget = 8 * time.Second

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func refuse(w http.ResponseWriter, code int, provider, msg string) {
	writeJSON(w, code, Answer{Status: "refused", Provider: provider, Message: msg, Stores: []StoreDecision{}})
}

// hook serves POST /hooks/<provider>. Verification fails closed: no secret
// configured, no signature, a bad one, or an oversized body are refused
// before the payload is read.
func (s *Service) hook(provider string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret := s.secrets[provider]
		if len(secret) == 0 || s.Repo == nil {
			refuse(w, http.StatusForbidden, provider, source.ErrNotConfigured.Error()+": start serve with --"+provider+"-secret-file (and --repo)")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, source.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				refuse(w, http.StatusRequestEntityTooLarge, provider, "the body is larger than 25 MiB")
				return
			}
			refuse(w, http.StatusBadRequest, provider, "reading the body: "+err.Error())
			return
		}
		if err := source.Verify(provider, secret, r.Header, body); err != nil {
			s.log.Warn("webhook refused", "provider", provider, "remote", r.RemoteAddr, "error", err)
			refuse(w, http.StatusUnauthorized, provider, err.Error())
			return
		}
		ev, err := source.Parse(provider, r.Header, body)
		if err != nil {
			refuse(w, http.StatusBadRequest, provider, err.Error())
			return
		}
		if ev.Delivery == "" {
			refuse(w, http.StatusBadRequest, provider, "the delivery carries no delivery id header, so a replay could not be told apart")
			return
		}
		fresh, err := s.Queue.ClaimDelivery(r.Context(), provider, ev.Delivery)
		if err != nil {
			refuse(w, http.StatusInternalServerError, provider, "recording the delivery: "+err.Error())
			return
		}
		if !fresh {
			writeJSON(w, http.StatusOK, Answer{Status: "duplicate", Provider: provider, Delivery: ev.Delivery,
				Message: "this delivery was received before; nothing was done", Stores: []StoreDecision{}})
			return
		}
		auth.Note(r.Context(), "", "webhook "+provider+" "+ev.Name)
		ans, code, err := s.onEvent(r.Context(), ev)
		if err != nil {
			// Nothing was queued: let the sender's redelivery run.
			s.Queue.ReleaseDelivery(context.WithoutCancel(r.Context()), provider, ev.Delivery)
			s.log.Error("webhook failed", "provider", provider, "delivery", ev.Delivery, "error", err)
			auth.NoteError(r.Context(), err.Error())
			refuse(w, http.StatusBadGateway, provider, err.Error())
			return
		}
		writeJSON(w, code, ans)
	}
}

// onEvent decides what a verified, first-seen delivery does.
func (s *Service) onEvent(ctx context.Context, ev *source.Event) (Answer, int, error) {
	ans := Answer{Provider: ev.Provider, Delivery: ev.Delivery, Branch: ev.Branch, Commit: ev.After, Stores: []StoreDecision{}}
	ignore := func(msg string) (Answer, int, error) {
		ans.Status, ans.Message = "ignored", msg
		return ans, http.StatusAccepted, nil
	}
	switch {
	case ev.Kind == source.EventPing:
		ans.Status, ans.Message, ans.Commit = "pong", "webhook verified; pushes to "+s.Repo.Branch()+" deploy", ""
		return ans, http.StatusOK, nil
	case ev.Kind != source.EventPush:
		return ignore(fmt.Sprintf("event %q does not deploy", ev.Name))
	case ev.Tag != "":
		return ignore("tag " + ev.Tag + " does not deploy; pushes to " + s.Repo.Branch() + " do")
	case ev.Branch != s.Repo.Branch():
		return ignore(fmt.Sprintf("a push to %q does not deploy; pushes to %s do", ev.Branch, s.Repo.Branch()))
	case ev.Deleted:
		return ignore("the branch was deleted")
	case !source.IsSHA(ev.After):
		return ans, 0, fmt.Errorf("the push names no commit (after=%q)", ev.After)
	}
	if m := source.SkipMarker(ev.HeadMessage); m != "" {
		ans.Status, ans.Message = "skipped", m+" in the head commit's message"
		ans.Stores = s.skipAll(ctx, m)
		return ans, http.StatusOK, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), AnswerBudget)
	defer cancel()
	// The payload says which commit; the bytes come from the configured repository only.
	if err := s.Repo.FetchCommit(ctx, ev.After); err != nil {
		return ans, 0, err
	}
	who := ev.Provider
	if ev.Pusher != "" {
		who += ":" + ev.Pusher
	}
	ds, err := s.decide(ctx, ev.After, Trigger{Kind: jobs.TriggerWebhook, Who: who, Ref: ev.Branch, Delivery: ev.Delivery})
	if err != nil {
		return ans, 0, err
	}
	ans.Stores = ds
	ans.Status = "accepted"
	n := 0
	for _, d := range ds {
		if d.Decision == Queued {
			n++
		}
	}
	ans.Message = fmt.Sprintf("%d store(s) queued, %d unchanged", n, len(ds)-n)
	return ans, http.StatusAccepted, nil
}
