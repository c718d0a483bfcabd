package proxy

import "net/http"

// frontTakesFiles says whether the Front serves req, a request for a
// static site or a cacheable asset, itself: answers from memory or from
// files the site keeps open (sendfile, static_sendfile.go) are nearly all
// of those, and net/http's server side costs about as much as the rest of
// such an answer. Other files on disk stay with net/http, which sends
// them with sendfile; a conditional request is the Front's too
// (http.ServeContent works on any ResponseWriter).
func frontTakesFiles(r *Router, set *targetSet, req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if site := set.static; site != nil {
		f := site.lookup(req.URL.Path)
		return f != nil && fromFront(f) && variantsFromFront(f)
	}
	// Cacheable: a hit is written from memory, a miss is proxied on the
	// synchronous path the Front takes anyway.
	return len(set.targets) > 0
}

// variantsFromFront: whichever encoding the client gets, the Front can
// send it (from memory or a kept file).
func variantsFromFront(f *staticFile) bool {
	for _, v := range f.variants {
		if !fromFront(v.file) {
			return false
		}
	}
	return true
}
