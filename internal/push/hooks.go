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
		// The answer budget counts from here: reading and verifying the body is in it.
		tm := newTiming()
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
		tm.mark("read")
		seen, err := s.Queue.SeenDelivery(r.Context(), provider, ev.Delivery)
		if err != nil {
			refuse(w, http.StatusInternalServerError, provider, "reading the deliveries: "+err.Error())
			return
		}
		tm.mark("seen")
		if seen {
			w.Header().Set("Server-Timing", tm.String())
			writeJSON(w, http.StatusOK, duplicate(provider, ev.Delivery))
			return
		}
		auth.Note(r.Context(), "", "webhook "+provider+" "+ev.Name)
		// A sender that hangs up does not stop a decision half-way: its claim and jobs go together.
		ans, code, err := s.onEvent(context.WithoutCancel(r.Context()), ev, tm)
		if err != nil {
			// Nothing was claimed nor queued: the sender's redelivery runs.
			s.log.Error("webhook failed", "provider", provider, "delivery", ev.Delivery, "error", err)
			auth.NoteError(r.Context(), err.Error())
			refuse(w, http.StatusBadGateway, provider, err.Error())
			return
		}
		w.Header().Set("Server-Timing", tm.String())
		writeJSON(w, code, ans)
	}
}

func duplicate(provider, delivery string) Answer {
	return Answer{Status: "duplicate", Provider: provider, Delivery: delivery,
		Message: "this delivery was received before; nothing was done", Stores: []StoreDecision{}}
}

// onEvent decides what a verified delivery does and claims it (with the jobs
// it queues, in one transaction); a delivery claimed meanwhile by a
// concurrent copy gets "duplicate".
func (s *Service) onEvent(ctx context.Context, ev *source.Event, tm *timing) (Answer, int, error) {
	ans := Answer{Provider: ev.Provider, Delivery: ev.Delivery, Branch: ev.Branch, Commit: ev.After, Stores: []StoreDecision{}}
	done := func(code int) (Answer, int, error) {
		fresh, _, err := s.Queue.Accept(ctx, ev.Provider, ev.Delivery, false, nil)
		tm.mark("claim")
		if err != nil {
			return ans, 0, err
		}
		if !fresh {
			return duplicate(ev.Provider, ev.Delivery), http.StatusOK, nil
		}
		return ans, code, nil
	}
	ignore := func(msg string) (Answer, int, error) {
		ans.Status, ans.Message = "ignored", msg
		return done(http.StatusAccepted)
	}
	switch {
	case ev.Kind == source.EventPing:
		ans.Status, ans.Message, ans.Commit = "pong", "webhook verified; pushes to "+s.Repo.Branch()+" deploy", ""
		return done(http.StatusOK)
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
		return done(http.StatusOK)
	}
	return s.deployPush(ctx, ev, ans, tm)
}
