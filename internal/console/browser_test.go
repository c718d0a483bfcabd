package console_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/console"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

const password = "console-password-for-tests"

type stack struct {
	srv *server.Server
	svc *push.Service
	dir string
}

// serve starts serve with the example repository, the push service and the console on --api.
func serve(t *testing.T) *stack {
	t.Helper()
	testenv.Node(t)
	g := testenv.NewGitRepo(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Driver: "process", Log: io.Discard, StopOnExit: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	svc, err := push.Open(ctx, push.Options{DataDir: dir, Jobs: 2, Source: source.Options{URL: g.Bare, Branch: "main"}},
		push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	svc.Mount(srv)
	// The app log reads serve's store logs, as `slipway serve` wires it.
	logs := func(ctx context.Context, store string, since time.Time, tail int, send func(console.LogLine) bool) error {
		return srv.StoreLogs(ctx, store, server.LogsQuery{Tail: tail, Follow: true}, since, func(e server.LogEntry) bool {
			return send(console.LogLine{Time: e.Time, Source: e.Source, App: e.App, Text: e.Text})
		})
	}
	con, err := console.New(console.Options{DataDir: dir, State: srv.State, Router: srv.Router, Driver: srv.Driver, Deployer: srv.Deployer,
		Tokens: srv.Tokens, Push: svc, RouterAddr: srv.HTTPAddr, Logs: logs})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	con.Mount(srv)
	if err := console.SetPassword(dir, password); err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	serveCtx, stopServe := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(serveCtx); close(done) }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		svc.Stop(sctx)
		cancel()
		stopServe()
		<-done
	})
	return &stack{srv: srv, svc: svc, dir: dir}
}

func (s *stack) waitJob(t *testing.T, id string) *jobs.Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		j, err := s.svc.Queue.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Done() {
			if j.Status != jobs.StatusSucceeded {
				t.Fatalf("job %s ended %s: %s", j.ID, j.Status, j.Error)
			}
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not end", id)
	return nil
}

// shots is where screenshots go: SLIPWAY_SCREENSHOTS, else a temp dir.
func shots(t *testing.T) string {
	if d := os.Getenv("SLIPWAY_SCREENSHOTS"); d != "" {
		os.MkdirAll(d, 0o755)
		return d
	}
	return t.TempDir()
}

func TestConsoleInChromium(t *testing.T) {
	chrome := testenv.Chromium(t)
	if chrome == "" {
		return
	}
	s := serve(t)
	ctx := context.Background()
	// Every store live first (as a push would make them).
	ans, err := server.NewClient(s.dir).DeployCommit(ctx, push.DeployRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ans.Stores {
		s.waitJob(t, d.Job)
	}
	// Secure cookies: browsers keep them on plain HTTP for localhost only.
	base := strings.Replace(s.srv.APIURL(), "127.0.0.1", "localhost", 1)
	out := shots(t)

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chrome), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000)}
	for _, f := range testenv.ChromiumFlags {
		opts = append(opts, chromedp.Flag(strings.TrimPrefix(f, "--"), true))
	}
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first run starts the browser: no timeout on it (it would end the browser).
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(out, "console-"+name+".png"), buf, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}

	// Log in: a wrong password first (refused), then the right one.
	if err := chromedp.Do(tctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`#password`),
		shot("login"),
		chromedp.SendKeys(`#password`, "wrong-password-123"),
		chromedp.Click(`#login`),
		chromedp.WaitVisible(`.login .flash.err`),
	); err != nil {
		t.Fatalf("a wrong login: %v", err)
	}
	if e := text(`.login .flash.err`); !strings.Contains(e, "wrong") {
		t.Fatalf("a wrong password showed %q", e)
	}
	if err := chromedp.Do(tctx,
		chromedp.SendKeys(`#password`, password),
		chromedp.Click(`#login`),
		chromedp.WaitVisible(`table.fleet`),
		shot("fleet"),
	); err != nil {
		body, _ := chromedp.Run(bctx, chromedp.Text(`body`))
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("logging in: %v (at %s: %q)", err, loc, body)
	}
	// Every store is live.
	for _, st := range []string{"us", "eu", "sports-brand"} {
		if row := text(`#store-` + st); !strings.Contains(row, st+"-v1") || !strings.Contains(row, "live") || !strings.Contains(row, "healthy") {
			t.Fatalf("fleet row of %s: %q", st, row)
		}
	}

	// A fleet rollout a CLI reports shows on the fleet view: its waves, each store's status.
	ro := api.Rollout{ID: "r-browser", Status: api.RolloutRunning, Waves: []api.RolloutWave{
		{Name: "canary", Canary: true, Stores: []api.RolloutStore{{Store: "us", Status: api.RolloutLive, Release: "us-v1"}}},
		{Name: "wave 1", Stores: []api.RolloutStore{{Store: "eu", Status: api.RolloutDeploying}, {Store: "sports-brand", Status: api.RolloutWaiting}}}}}
	if err := server.NewClient(s.dir).ReportRollout(ctx, ro); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#rollout`), shot("fleet-rollout")); err != nil {
		t.Fatalf("the fleet view with a rollout: %v", err)
	}
	if eu, us := text(`#rollout-eu`), text(`#rollout-us`); !strings.Contains(eu, "deploying") || !strings.Contains(us, "live") || !strings.Contains(text(`#rollout`), "canary") {
		t.Fatalf("the rollout shows us %q, eu %q", us, eu)
	}

	// Deploy us from the fleet view; its log streams to the end.
	if err := chromedp.Do(tctx,
		chromedp.Click(`#deploy-us`),
		chromedp.WaitVisible(`#log`),
		chromedp.WaitVisible(`#job-status .s-succeeded`),
		shot("job"),
	); err != nil {
		t.Fatalf("deploying us: %v", err)
	}
	if logText := text(`#log`); !strings.Contains(logText, "finished: succeeded") || !strings.Contains(logText, "live: us.localhost") {
		t.Fatalf("the streamed log: %q", logText)
	}
	cur, err := s.srv.State.Current(ctx, "us")
	if err != nil || cur.ID != "us-v2" {
		t.Fatalf("live after Deploy: %+v, %v", cur, err)
	}

	// Roll back to us-v1 from the store page.
	if err := chromedp.Do(tctx,
		chromedp.Navigate(base+"/stores/us"),
		chromedp.WaitVisible(`#rollback-us-v1`),
		shot("store"),
		chromedp.Click(`#rollback-us-v1`),
		chromedp.WaitVisible(`#job-status .s-succeeded`),
		chromedp.Navigate(base+"/jobs"),
		chromedp.WaitVisible(`table`),
		shot("jobs"),
	); err != nil {
		t.Fatalf("rolling back: %v", err)
	}
	cur, err = s.srv.State.Current(ctx, "us")
	if err != nil || cur.Kind != state.KindRollback {
		t.Fatalf("live after the rollback: %+v, %v", cur, err)
	}
	v1, _ := s.srv.State.Release(ctx, "us-v1")
	for app, im := range v1.Images {
		if cur.Images[app].Digest != im.Digest {
			t.Fatalf("the rollback runs %s %s, us-v1 ran %s", app, cur.Images[app].Digest, im.Digest)
		}
	}
	appLogInBackground(t, s, bctx, tctx, base, shot)
	t.Logf("screenshots in %s", out)
}

// appLogInBackground opens eu's store page, whose app log shows its
// instances' output named by instance, puts the tab in the background behind
// another one, restarts eu, and finds the new instances' lines in the
// background tab's log.
func appLogInBackground(t *testing.T, s *stack, bctx, tctx context.Context, base string, shot func(string) chromedp.Action[chromedp.Void]) {
	t.Helper()
	lines := func() string {
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#applog .line')).map(e => e.textContent).join('')`))
		if err != nil {
			t.Fatalf("reading the app log: %v", err)
		}
		return v
	}
	if err := chromedp.Do(tctx,
		chromedp.Navigate(base+"/stores/eu"),
		chromedp.WaitVisible(`#applog .line`),
	); err != nil {
		t.Fatalf("eu's app log: %v", err)
	}
	before := lines()
	if !strings.Contains(before, "-eu-v1-1] [storefront-unified-nextjs] listening on") || !strings.Contains(before, "[deploy] ") {
		t.Fatalf("eu's app log does not show its instances' output by name: %q", before)
	}
	// Another tab in the same window, in front: eu's page is now a background tab (hidden).
	no := false
	tab, err := chromedp.CallBrowser(tctx, target.CreateTarget, target.CreateTargetParams{URL: base + "/jobs", NewWindow: &no})
	if err != nil {
		t.Fatalf("opening a second tab: %v", err)
	}
	other, cancelOther := chromedp.NewContext(bctx, chromedp.WithTargetID(tab.TargetID))
	defer cancelOther()
	if err := chromedp.Do(other, chromedp.WaitVisible(`table`)); err != nil {
		t.Fatalf("the second tab: %v", err)
	}
	vis, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.visibilityState`))
	if err != nil || vis != "hidden" {
		t.Fatalf("eu's tab behind another one is %q (%v), not hidden", vis, err)
	}
	cur, err := s.srv.State.Current(context.Background(), "eu")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.NewClient(s.dir).Op(context.Background(), "restart", "eu", nil); err != nil {
		t.Fatalf("restarting eu: %v", err)
	}
	insts, err := s.srv.Driver.List(context.Background(), map[string]string{"dev.slipway.store": "eu", "dev.slipway.role": "web"})
	if err != nil || len(insts) == 0 {
		t.Fatalf("eu's instances after the restart: %v %v", insts, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := lines()
		missing := ""
		for _, in := range insts {
			if !strings.Contains(now, "["+in.Name+"] ") || strings.Contains(before, "["+in.Name+"] ") {
				missing = in.Name
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background tab (visibility %s) never showed %s's output after the restart of release %s:\n%s", vis, missing, cur.ID, now)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancelOther() // closes the second tab: eu's is in front again for its screenshot
	if err := chromedp.Do(tctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('applog').scrollIntoView()`), shot("store-applog")); err != nil {
		t.Fatal(err)
	}
}
