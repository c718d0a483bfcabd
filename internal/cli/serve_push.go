package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/console"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/source"
)

// pushOptions are serve's repository, webhook and job-queue flags.
type pushOptions struct {
	repo, branch            string
	tokenFile, keyFile      string
	github, gitlab, gitea   string
	jobs                    int
	notifyURL, notifySecret string
}

func (p *pushOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&p.repo, "repo", "", "repository to deploy from on a push or deploy --commit (URL or path; default source.repo in the config)")
	f.StringVar(&p.branch, "branch", "", "branch whose pushes deploy (default source.branch, else main)")
	f.StringVar(&p.tokenFile, "repo-token-file", "", "file holding an HTTPS access token for --repo")
	f.StringVar(&p.keyFile, "repo-key-file", "", "SSH deploy key file for --repo")
	f.StringVar(&p.github, "github-secret-file", "", "file holding the GitHub webhook secret (POST /hooks/github)")
	f.StringVar(&p.gitlab, "gitlab-secret-file", "", "file holding the GitLab webhook secret token (POST /hooks/gitlab)")
	f.StringVar(&p.gitea, "gitea-secret-file", "", "file holding the Gitea/Forgejo webhook secret (POST /hooks/gitea)")
	f.StringVar(&p.notifyURL, "notify-url", "", "POST a signed JSON message (X-Slipway-Signature-256) to this URL when a job ends")
	f.StringVar(&p.notifySecret, "notify-secret-file", "", "file holding the HMAC-SHA256 key for --notify-url")
	f.IntVar(&p.jobs, "jobs", 1, "jobs (builds and deploys of pushed commits) that run at once")
}

// options merges the flags over the config's source: section.
func (p *pushOptions) options(cfg *config.Config, dataDir string, log *slog.Logger) push.Options {
	var s config.SourceSpec
	if cfg != nil {
		s = cfg.Source
	}
	pick := func(flag, conf string) string {
		if flag != "" {
			return flag
		}
		return conf
	}
	return push.Options{DataDir: dataDir, Jobs: p.jobs, Log: log,
		Source: source.Options{URL: pick(p.repo, s.Repo), Branch: pick(p.branch, s.Branch),
			TokenFile: pick(p.tokenFile, s.TokenFile), KeyFile: pick(p.keyFile, s.KeyFile)},
		SecretFiles: map[string]string{source.GitHub: pick(p.github, s.GitHubSecretFile),
			source.GitLab: pick(p.gitlab, s.GitLabSecretFile), source.Gitea: pick(p.gitea, s.GiteaSecretFile)}}
}

// startPush opens the push service on srv and returns the context to serve
// with: when ctx ends, running jobs are stopped (deploys under way finish)
// before the server closes its state. stop is for the server's own exit.
func startPush(ctx context.Context, g *globals, p *pushOptions, srv *server.Server, dataDir string, cfg *config.Config) (serveCtx context.Context, stop func(), err error) {
	if p.jobs < 1 {
		return nil, nil, usagef("--jobs %d: give 1 or more", p.jobs)
	}
	log := slog.New(slog.NewTextHandler(g.stderr, nil))
	po := p.options(cfg, dataDir, log)
	var notifier *push.Notifier
	if p.notifyURL != "" || p.notifySecret != "" {
		if notifier, err = push.NewNotifier(p.notifyURL, p.notifySecret, log); err != nil {
			return nil, nil, &usageError{err}
		}
		po.Notify = notifier.Notify
	}
	svc, err := push.Open(ctx, po, push.Deps{State: srv.State, Deployer: srv.Deployer, Images: srv.Images})
	if err != nil {
		return nil, nil, err
	}
	svc.Mount(srv)
	srv.RecordJobs(svc.Queue)
	con, err := console.New(console.Options{DataDir: dataDir, State: srv.State, Router: srv.Router, Driver: srv.Driver, Deployer: srv.Deployer,
		Tokens: srv.Tokens, Push: svc, RouterAddr: srv.HTTPAddr, Log: log, Logs: consoleLogs(srv)})
	if err != nil {
		return nil, nil, err
	}
	con.Mount(srv)
	svc.Start(ctx)
	if svc.Repo != nil {
		fmt.Fprintf(g.stderr, "slipway serve: deploys pushes to %s of %s\n", svc.Repo.Branch(), source.StripCredentials(svc.Repo.URL()))
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	once := sync.OnceFunc(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Minute)
		defer c()
		svc.Stop(sctx)
		if notifier != nil {
			notifier.Wait(sctx)
		}
		cancel()
	})
	go func() {
		select {
		case <-ctx.Done():
			once()
		case <-serveCtx.Done():
		}
	}()
	return serveCtx, once, nil
}

// serveConfig is the config serve reads source: from: none is fine when the
// flags say everything, a broken one is not.
func serveConfig(g *globals, p *pushOptions) (*config.Config, error) {
	cfg, err := g.load()
	if err == nil {
		return cfg, nil
	}
	if errors.Is(err, config.ErrNotFound) || p.repo != "" {
		return nil, nil
	}
	return nil, err
}

// consoleLogs gives the console serve's store logs (the same lines, redacted, as GET /v1/stores/{store}/logs).
func consoleLogs(srv *server.Server) console.AppLogs {
	return func(ctx context.Context, store string, since time.Time, tail int, send func(console.LogLine) bool) error {
		return srv.StoreLogs(ctx, store, server.LogsQuery{Tail: tail, Follow: true}, since, func(e server.LogEntry) bool {
			return send(console.LogLine{Time: e.Time, Source: e.Source, App: e.App, Text: e.Text})
		})
	}
}
