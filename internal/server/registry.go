package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/auth"
)

// mountRegistry serves the embedded image store read-only over the OCI
// distribution API, so any Docker or OCI client can pull what `slipway build`
// published there: GET/HEAD /v2/, /v2/<name>/manifests/<tag|digest>, /v2/<name>/blobs/<digest>.
func (s *Server) mountRegistry(mux *http.ServeMux) {
	route(mux, "/v2/", auth.ScopeRead, s.handleV2)
}

// RegistryHandler returns the read-only /v2/ handler, to mount on a TCP
// listener: every request needs a read token (see registryAuth).
func (s *Server) RegistryHandler() http.Handler { return s.registryAuth(http.HandlerFunc(s.handleV2)) }

func (s *Server) handleV2(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		registryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the embedded image store is read-only: publish with slipway build")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	switch {
	case strings.Contains(p, "/manifests/"):
		i := strings.LastIndex(p, "/manifests/")
		s.serveManifest(w, r, p[:i], p[i+len("/manifests/"):])
	case strings.Contains(p, "/blobs/"):
		i := strings.LastIndex(p, "/blobs/")
		s.serveBlob(w, r, p[i+len("/blobs/"):])
	default:
		registryError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown path")
	}
}

func registryError(w http.ResponseWriter, code int, ecode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": ecode, "message": msg}}})
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	var nref name.Reference
	var err error
	if strings.HasPrefix(ref, "sha256:") {
		nref, err = name.NewDigest("slipway.local/"+repo+"@"+ref, name.WeakValidation)
	} else {
		nref, err = name.NewTag("slipway.local/"+repo+":"+ref, name.WeakValidation)
	}
	if err != nil {
		registryError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
		return
	}
	var digest v1.Hash
	if d, ok := nref.(name.Digest); ok {
		digest, err = v1.NewHash(d.DigestStr())
		if err != nil {
			registryError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
			return
		}
	} else {
		d, ok, err := s.Images.Exists(r.Context(), nref)
		if err != nil || !ok {
			registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "no such tag")
			return
		}
		digest = d
	}
	// Only manifests: small JSON with a config or manifests list, never a layer
	// read into memory because someone asked for it under /manifests/.
	const maxManifest = 4 << 20
	if st, err := os.Stat(s.blobPath(digest)); err != nil || st.Size() > maxManifest {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "no such manifest")
		return
	}
	raw, err := os.ReadFile(s.blobPath(digest))
	var mt struct {
		MediaType string            `json:"mediaType"`
		Config    json.RawMessage   `json:"config"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err != nil || json.Unmarshal(raw, &mt) != nil || (mt.Config == nil && mt.Manifests == nil) {
		registryError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "no such manifest")
		return
	}
	if mt.MediaType == "" {
		mt.MediaType = "application/vnd.oci.image.manifest.v1+json"
	}
	w.Header().Set("Content-Type", mt.MediaType)
	w.Header().Set("Docker-Content-Digest", digest.String())
	w.Header().Set("Content-Length", itoa(len(raw)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(raw)
}

func (s *Server) blobPath(h v1.Hash) string {
	return filepath.Join(s.Images.Dir(), "blobs", h.Algorithm, h.Hex)
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, dgst string) {
	h, err := v1.NewHash(dgst)
	if err != nil {
		registryError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		registryError(w, http.StatusNotFound, "BLOB_UNKNOWN", "no such blob")
		return
	}
	defer f.Close()
	w.Header().Set("Docker-Content-Digest", h.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", timeZero, f)
}

var timeZero = time.Time{}

func itoa(n int) string { return strconv.Itoa(n) }
