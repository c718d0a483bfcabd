package push

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
)

// maxRollouts is how many reported rollouts serve keeps (in memory: a
// rollout's record of truth is its stores' releases and jobs; this is the view).
const maxRollouts = 20

// rollouts keeps the fleet rollouts CLIs report, newest last.
type rollouts struct {
	mu   sync.Mutex
	list []api.Rollout
}

func (rs *rollouts) put(r api.Rollout) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := range rs.list {
		if rs.list[i].ID == r.ID {
			r.StartedAt = rs.list[i].StartedAt
			rs.list[i] = r
			return
		}
	}
	rs.list = append(rs.list, r)
	if len(rs.list) > maxRollouts {
		rs.list = rs.list[1:]
	}
}

// Rollouts returns the reported rollouts, newest first.
func (s *Service) Rollouts() []api.Rollout {
	s.rollouts.mu.Lock()
	defer s.rollouts.mu.Unlock()
	out := append([]api.Rollout(nil), s.rollouts.list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	return out
}

// putRollout serves PUT /v1/rollouts/{id}: a CLI running `deploy --all` reports its rollout.
func (s *Service) putRollout(w http.ResponseWriter, r *http.Request) {
	var ro api.Rollout
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ro); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decoding the rollout: %w", err))
		return
	}
	if ro.ID != r.PathValue("id") {
		writeError(w, http.StatusBadRequest, fmt.Errorf("id: %q in the body, %q in the path", ro.ID, r.PathValue("id")))
		return
	}
	if err := ro.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	for _, wv := range ro.Waves {
		for _, st := range wv.Stores {
			if err := auth.CheckStore(r.Context(), auth.ScopeDeploy, st.Store); err != nil {
				auth.WriteError(w, err)
				return
			}
		}
	}
	now := time.Now().UTC()
	ro.UpdatedAt, ro.Who = now, callerName(r.Context())
	if ro.StartedAt.IsZero() || ro.StartedAt.After(now) {
		ro.StartedAt = now
	}
	auth.Note(r.Context(), "", "rollout "+ro.ID+" "+ro.Status)
	s.rollouts.put(ro)
	writeJSON(w, http.StatusOK, ro)
}

// listRollouts serves GET /v1/rollouts.
func (s *Service) listRollouts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Rollouts())
}
