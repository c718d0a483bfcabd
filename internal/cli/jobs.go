package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/server"
)

type jobsOptions struct {
	store  string
	limit  int
	follow string
	json   bool
}

func newJobsCmd(g *globals) *cobra.Command {
	o := &jobsOptions{}
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List serve's jobs (deploys of pushed commits), or follow one's log",
		Long: `jobs lists the jobs of the running slipway serve, newest first: one job builds
and deploys one store at one commit. Jobs come from webhooks, slipway deploy
--commit, and the console; the deploys serve runs as they are asked (slipway
deploy, up, rollback, restart, from here or from CI) are listed too, with
trigger cli. Per store one job runs and at most one waits; a newer
commit supersedes the waiting one. --follow streams a job's log until it ends
(exit 1 if it did not succeed).`,
		Example: `  slipway jobs
  slipway jobs --store-id us
  slipway jobs --follow j-42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			if o.follow != "" {
				return followJobs(cmd.Context(), g, c, []string{o.follow}, false)
			}
			list, err := c.Jobs(cmd.Context(), o.store, o.limit)
			if err != nil {
				return err
			}
			if o.json {
				return printJSON(g.stdout, list)
			}
			printJobs(g, list)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.store, "store-id", "", "only this store's jobs")
	cmd.Flags().IntVar(&o.limit, "limit", 20, "how many jobs to list")
	cmd.Flags().StringVar(&o.follow, "follow", "", "stream this job's log until it ends")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func printJobs(g *globals, list []*jobs.Job) {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTORE\tCOMMIT\tSTATUS\tSTAGE\tTRIGGER\tWHO\tCREATED\tTOOK")
	for _, j := range list {
		took := "-"
		if !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
			took = j.FinishedAt.Sub(j.StartedAt).Round(10 * time.Millisecond).String()
		}
		status := j.Status
		if j.SupersededBy != "" {
			status += " by " + j.SupersededBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Store, shortID(j.Commit), status, dash(j.Stage), j.Trigger, dash(j.Who),
			j.CreatedAt.Local().Format("2006-01-02 15:04:05"), took)
	}
	tw.Flush()
}

func shortID(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// followJobs streams the logs of ids (prefixed by store when several) and fails when any did not succeed.
func followJobs(ctx context.Context, g *globals, c *server.Client, ids []string, prefix bool) error {
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := make([]*jobs.Job, len(ids))
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := ""
			if prefix {
				if j, err := c.Job(ctx, id); err == nil {
					tag = "[" + j.Store + "] "
				}
			}
			results[i], errs[i] = c.FollowJob(ctx, id, 0, func(l jobs.Line) {
				mu.Lock()
				fmt.Fprintf(g.stderr, "%s%s %s\n", tag, l.At.Local().Format("15:04:05"), l.Text)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	failed := false
	for i, j := range results {
		if errs[i] != nil {
			fmt.Fprintf(g.stderr, "%s: %v\n", ids[i], errs[i])
			failed = true
			continue
		}
		if j.Status != jobs.StatusSucceeded {
			failed = true
		}
	}
	var done []*jobs.Job
	for _, j := range results {
		if j != nil {
			done = append(done, j)
		}
	}
	printJobs(g, done)
	if failed {
		return &silentError{ExitFailed}
	}
	return nil
}

func newCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a job: a waiting one at once, a running one at its next safe point",
		Long: `cancel stops a job. A waiting job never starts. A running job stops at its next
safe point (between fetch, compose, build and deploy); once its deploy has
started it runs to its end, because a cutover is never cut in half.`,
		Example: `  slipway cancel j-42`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(nil)
			if err != nil {
				return err
			}
			j, err := c.CancelJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			msg := j.Status
			if j.Status == jobs.StatusRunning {
				msg = "cancel requested; it stops at its next safe point"
				if j.Stage == jobs.StageDeploy {
					msg = "its deploy has started and runs to its end"
				}
			}
			fmt.Fprintf(g.stdout, "%s (%s at %s): %s\n", j.ID, j.Store, shortID(j.Commit), msg)
			return nil
		},
	}
}

// deployCommit is `slipway deploy --commit`: the server builds and deploys a
// commit of its repository; the stores that changed since their live commit,
// or the ones named.
func deployCommit(ctx context.Context, g *globals, o *deployOptions) error {
	c, err := g.client(nil)
	if err != nil {
		return err
	}
	ans, err := c.DeployCommit(ctx, push.DeployRequest{Commit: o.commit, Stores: o.storeIDs, DeployOnly: o.deployOnly})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(g.stdout, "commit %s\n", ans.Commit)
	fmt.Fprintln(tw, "STORE\tDECISION\tJOB\tREASONS\tSINCE\tNOTE")
	var ids []string
	for _, d := range ans.Stores {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Store, d.Decision, dash(d.Job), dash(strings.Join(d.Reasons, ",")), dash(shortID(d.Since)), d.Note)
		if d.Job != "" {
			ids = append(ids, d.Job)
		}
	}
	tw.Flush()
	if len(ids) == 0 || o.detach {
		return nil
	}
	return followJobs(ctx, g, c, ids, true)
}

// pushCommands are the commands of serve's job queue.
func pushCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{newJobsCmd(g), newCancelCmd(g), newConsoleCmd(g)}
}
