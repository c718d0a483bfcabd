package proxy

import "net/http"

// frontTakesFiles says whether the Front serves req, a request for a
// static site or a cacheable asset, itself: answers from memory are
// nearly all of those, and net/http's server side costs about as much
// as the rest of such an answer. Files on disk stay with net/http, which
// sends them with sendfile; a conditional request for a file in memory
// is the Front's too (http.ServeContent works on any ResponseWriter).
func frontTakesFiles(r *Router, set *targetSet, req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if site := set.static; site != nil {
		f := site.lookup(req.URL.Path)
		return f != nil && f.data != nil && variantsInMemory(f)
	}
	// Cacheable: a hit is written from memory, a miss is proxied on the
	// synchronous path the Front takes anyway.
	return len(set.targets) > 0
}

// variantsInMemory: whichever encoding the client gets is in memory.
func variantsInMemory(f *staticFile) bool {
	for _, v := range f.variants {
		if v.file.data == nil {
			return false
		}
	}
	return true
}
