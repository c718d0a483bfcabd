package server

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/jobs"
)

// TestDeploysAreRecordedJobs: each store of a POST /v1/deploys is a job in
// the queue's table (trigger cli, the caller, status, release, log), so that
// `slipway jobs` lists CLI and CI deploys beside pushed ones; a failed store
// is a failed job with the reason; no secret reaches the job log.
func TestDeploysAreRecordedJobs(t *testing.T) {
	h := startRepo(t, jobConfig)
	q, err := jobs.Open(context.Background(), filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	h.s.RecordJobs(q)
	us := h.publish("v1")
	eu := us
	eu.Store = "eu"
	if _, err := h.job(api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"us", "eu"}, Commit: "c1",
		Images: []api.ImageRef{us, eu}, Secrets: map[string]string{"API_KEY": "k-123456"}}); err != nil {
		t.Fatal(err)
	}
	list, err := q.List(context.Background(), jobs.Filter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("jobs: %v %+v", err, list)
	}
	for _, j := range list {
		if j.Trigger != jobs.TriggerCLI || !strings.HasPrefix(j.Who, "unix:") || j.Kind != api.KindBuildDeploy || j.Commit != "c1" || !j.Direct || j.FinishedAt.IsZero() {
			t.Errorf("%s: %+v", j.Store, j)
		}
		lines, _ := q.Logs(context.Background(), j.ID, 0, 0)
		var log []string
		for _, l := range lines {
			log = append(log, l.Text)
		}
		text := strings.Join(log, "\n")
		if strings.Contains(text, "k-123456") {
			t.Errorf("%s: the secret is in the job log", j.Store)
		}
		switch j.Store {
		case "us":
			if j.Status != jobs.StatusSucceeded || j.Release != "us-v1" || !strings.Contains(text, "deploy: live: ") {
				t.Errorf("us: %s %s\n%s", j.Status, j.Release, text)
			}
		case "eu":
			if j.Status != jobs.StatusFailed || j.Release != "eu-v1" || !strings.Contains(j.Error, "install") || !strings.Contains(text, "finished: failed") {
				t.Errorf("eu: %s %s %q\n%s", j.Status, j.Release, j.Error, text)
			}
		}
	}
}
