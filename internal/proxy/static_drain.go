package proxy

import (
	"net/http"
	"time"
)

// A static site's directory handle lives as long as its release serves:
// a cutover drains the replaced site like a replaced target (new requests
// go to the new set, those in flight finish) and then closes it, so a
// retired release holds no file descriptor and its files may be pruned.
// The counting mirrors target.acquire/release.

// acquire registers a request; false means the site is draining (the
// request loaded the set just before a swap and must look again).
func (s *staticSite) acquire() bool {
	s.inflight.Add(1)
	if s.draining.Load() {
		s.release()
		return false
	}
	return true
}

func (s *staticSite) release() {
	if s.inflight.Add(-1) == 0 && s.draining.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// drain stops new requests, waits up to timeout for those in flight and
// closes the directory. A request still running past the timeout keeps
// the file it opened (an open file outlives its directory handle).
func (s *staticSite) drain(timeout time.Duration) {
	s.draining.Store(true)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-s.idle:
		case <-timer.C:
			s.close()
			return
		}
	}
	s.close()
}

// close releases the directory handle, once.
func (s *staticSite) close() {
	s.closeOnce.Do(func() {
		if s.root != nil {
			s.root.Close()
		}
		s.closeKept()
	})
}

// serveStatic answers req from svc's static site. A request that loaded a
// set whose site began draining looks again; if the service no longer
// serves files (a cutover to processes), it is forwarded.
func (r *Router) serveStatic(svc *service, site *staticSite, w http.ResponseWriter, req *http.Request) (int, int64) {
	for range 8 {
		if site.acquire() {
			defer site.release()
			return site.serve(r, w, req)
		}
		set := svc.active.Load()
		if set.static == nil {
			status, n, _ := r.forward(svc, w, req)
			return status, n
		}
		site = set.static
	}
	r.errorPage(w, req, http.StatusServiceUnavailable, "The site is being replaced; try again.")
	return http.StatusServiceUnavailable, 0
}

// closeStatics closes the sites of pending deploys that never went live.
func closeStatics(ps []*pending) {
	for _, p := range ps {
		if p.next.static != nil {
			p.next.static.close()
		}
	}
}

// replacedStatic is the site a swap from old to next retires, if any.
func replacedStatic(old, next *targetSet) *staticSite {
	if old.static != nil && old.static != next.static {
		return old.static
	}
	return nil
}
