package pipeline

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/state"
)

// verify requests every host of the store through the router and checks that
// real domain names resolve (a warning: DNS is often set up after the first deploy).
func (d *Deployer) verify(ctx context.Context, rel *state.Release, req DeployRequest, say func(string, string, ...any)) error {
	st := state.Stage{Name: StageVerify, Started: time.Now(), Status: "ok"}
	var problems, warnings []string
	for _, a := range req.Apps {
		path := a.Health.Path
		if path == "" {
			path = "/"
		}
		for _, h := range a.Hosts {
			if strings.HasPrefix(h, "*.") {
				continue
			}
			r := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://"+h+path, nil)
			w := httptest.NewRecorder()
			d.Router.ServeHTTP(w, r)
			if (a.Health.MaxStatus > 0 && !a.Health.Passes(w.Code)) || (a.Health.MaxStatus == 0 && w.Code >= 400) {
				problems = append(problems, fmt.Sprintf("%s%s answered %d", h, path, w.Code))
			}
			if req.DNS != "off" && !strings.HasSuffix(h, ".localhost") && h != "localhost" {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				var res interface {
					LookupHost(ctx context.Context, host string) ([]string, error)
				} = net.DefaultResolver
				if d.Resolver != nil {
					res = d.Resolver
				}
				addrs, err := res.LookupHost(rctx, h)
				cancel()
				if err != nil || len(addrs) == 0 {
					warnings = append(warnings, fmt.Sprintf("%s does not resolve (%v): point its DNS at this host", h, err))
				}
			}
		}
	}
	tlsProblems, dnsWarnings := d.verifyTLS(ctx, req, say)
	problems = append(problems, tlsProblems...)
	if req.DNS != "off" {
		warnings = append(warnings, dnsWarnings...)
	}
	if req.DNS == "error" {
		problems = append(problems, warnings...)
		warnings = nil
	}
	for _, w := range warnings {
		say(StageVerify, "warning: %s", w)
	}
	st.Finished = time.Now()
	var err error
	if len(problems) > 0 {
		st.Status = "failed"
		st.Output = strings.Join(problems, "\n")
		err = fmt.Errorf("verify: %s", strings.Join(problems, "; "))
	} else {
		say(StageVerify, "every host answers")
	}
	if len(warnings) > 0 {
		st.Note = strings.Join(warnings, "; ")
	}
	rel.Stages = append(rel.Stages, st)
	return err
}
