// Package source is serve's git side: a bare cache of the configured
// repository, fetched with the git CLI; trees of exact commits (never a
// working tree); which stores a commit changes; and the verification and
// parsing of push webhooks from GitHub, GitLab and Gitea.
package source

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/gitfs"
)

// Options say which repository serve deploys from.
type Options struct {
	// URL is an https://, ssh://, scp-like (git@host:path) URL, file:// URL or local path.
	URL string
	// Branch is the branch that deploys on a push; default main.
	Branch string
	// TokenFile holds an HTTPS access token (sent as basic auth, user x-access-token).
	TokenFile string
	// KeyFile is an SSH deploy key.
	KeyFile string
	// CacheDir holds the bare cache (cache.git) and commit snapshots.
	CacheDir string
}

// Repo is the bare cache of one repository.
type Repo struct {
	o      Options
	gitDir string
	// fetchMu serialises fetches: git's ref updates in one repository must not race.
	fetchMu sync.Mutex
	snapMu  sync.Mutex
	snaps   map[string]*sync.Mutex
	inUse   map[string]int
	cache   cache
	// batch reads objects and refs of the cache without a git process each,
	// so a webhook's decision after its fetch costs pipe round trips.
	batch *gitfs.Batch
	// maintained is when a fetch last let git run its auto maintenance: not
	// on every fetch, where it is one more process in a webhook's answer.
	maintained time.Time
}

var branchRe = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// CheckBranch refuses names git would not accept as a branch, or that could be read as an option.
func CheckBranch(b string) error {
	if b == "" || !branchRe.MatchString(b) || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") || strings.Contains(b, "..") || strings.Contains(b, "//") {
		return fmt.Errorf("%q is not a branch name", b)
	}
	return nil
}

// CheckURL refuses repository URLs that carry credentials (they belong in a
// file) or that git could read as an option.
func CheckURL(u string) error {
	if u == "" {
		return errors.New("no repository given")
	}
	if strings.HasPrefix(u, "-") {
		return fmt.Errorf("%q is not a repository URL", u)
	}
	if strings.Contains(u, "://") {
		p, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("repository URL: %w", err)
		}
		if _, ok := p.User.Password(); ok {
			return errors.New("the repository URL holds a password: put the token in a file and give it with the token file option")
		}
		switch p.Scheme {
		case "https", "http", "ssh", "file", "git":
		default:
			return fmt.Errorf("repository URL scheme %q: use https, ssh, file or a local path", p.Scheme)
		}
	}
	return nil
}

// Open creates or reuses the bare cache under o.CacheDir.
func Open(ctx context.Context, o Options) (*Repo, error) {
	if o.Branch == "" {
		o.Branch = "main"
	}
	if err := CheckURL(o.URL); err != nil {
		return nil, err
	}
	if err := CheckBranch(o.Branch); err != nil {
		return nil, fmt.Errorf("branch: %w", err)
	}
	if o.TokenFile != "" && o.KeyFile != "" {
		return nil, errors.New("give a token file or a key file, not both")
	}
	for _, f := range []string{o.TokenFile, o.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("repository credentials: %w", err)
		}
	}
	if !strings.Contains(o.URL, "://") && !strings.Contains(o.URL, "@") {
		// A local path: absolute, so the cache's remote does not depend on serve's cwd.
		abs, err := filepath.Abs(o.URL)
		if err != nil {
			return nil, err
		}
		o.URL = abs
	}
	r := &Repo{o: o, gitDir: filepath.Join(o.CacheDir, "cache.git"), snaps: map[string]*sync.Mutex{}, inUse: map[string]int{}}
	r.cache.init()
	r.batch = gitfs.NewBatch(r.gitDir, r.baseEnv())
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(r.gitDir, "HEAD")); err != nil {
		if _, err := r.git(ctx, "init", "--bare", "--quiet", r.gitDir); err != nil {
			return nil, fmt.Errorf("creating the repository cache: %w", err)
		}
	}
	return r, nil
}

// GitDir is the bare cache's directory.
func (r *Repo) GitDir() string { return r.gitDir }

// Branch is the branch pushes deploy from.
func (r *Repo) Branch() string { return r.o.Branch }

// URL is the configured repository, credentials never included.
func (r *Repo) URL() string { return r.o.URL }

// env is what every git command gets: no prompts, no user or system config
// that could redirect the fetch, and the credentials from their file (through
// the environment, never argv, which every user on the host can read).
func (r *Repo) env() ([]string, error) {
	env := r.baseEnv()
	n := 0
	if r.o.TokenFile != "" {
		b, err := os.ReadFile(r.o.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the repository token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("the repository token file %s is empty", r.o.TokenFile)
		}
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok))
		env = append(env, "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
		n++
	}
	if r.o.KeyFile != "" {
		known := filepath.Join(r.o.CacheDir, "known_hosts")
		env = append(env, "GIT_SSH_COMMAND=ssh -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="+shellQuote(known)+" -i "+shellQuote(r.o.KeyFile))
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(n))
	return env, nil
}

// baseEnv is env without credentials: for git commands that never reach the remote.
func (r *Repo) baseEnv() []string {
	return append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false")
}

// Close ends the cache's object reader (it starts again if the Repo is used).
func (r *Repo) Close() error { return r.batch.Close() }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (r *Repo) git(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	env, err := r.env()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("git %s: %s", args[0], r.redact(msg))
	}
	return out, nil
}

// redact removes the token from anything git printed (a misbehaving remote may echo headers).
func (r *Repo) redact(s string) string {
	if r.o.TokenFile == "" {
		return s
	}
	if b, err := os.ReadFile(r.o.TokenFile); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			s = strings.ReplaceAll(s, tok, "***")
			s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte("x-access-token:"+tok)), "***")
		}
	}
	return s
}

func (r *Repo) gitIn(ctx context.Context, args ...string) ([]byte, error) {
	return r.git(ctx, append([]string{"--git-dir", r.gitDir}, args...)...)
}

// Fetch brings the configured branch (and, when commit is set and not there
// yet, that commit) into the cache and returns the branch's head. The URL is
// always the configured one: a webhook payload's clone URL is never used.
func (r *Repo) Fetch(ctx context.Context) (string, error) { return r.FetchBranch(ctx, r.o.Branch) }

// FetchBranch brings one branch of the configured repository into the cache and returns its head.
func (r *Repo) FetchBranch(ctx context.Context, branch string) (string, error) {
	if err := CheckBranch(branch); err != nil {
		return "", err
	}
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return r.fetchLocked(ctx, branch)
}

func (r *Repo) fetchLocked(ctx context.Context, branch string) (string, error) {
	ref := "refs/heads/" + branch
	if _, err := r.fetchGit(ctx, "+"+ref+":"+ref); err != nil {
		return "", fmt.Errorf("fetching %s from %s: %w", branch, StripCredentials(r.o.URL), err)
	}
	return r.Resolve(ctx, ref)
}

// fetchGit runs git fetch from the configured URL (never one a payload
// names). Git's auto maintenance (a process that mostly finds nothing to do)
// runs with at most one fetch an hour; the forced-update check is skipped: a
// cache ref follows the remote whatever it did.
func (r *Repo) fetchGit(ctx context.Context, refspec string) ([]byte, error) {
	args := []string{"-c", "fetch.showForcedUpdates=false", "-c", "advice.fetchShowForcedUpdates=false"}
	if time.Since(r.maintained) < time.Hour {
		args = append(args, "-c", "maintenance.auto=false")
	} else {
		r.maintained = time.Now()
	}
	args = append(args, "--git-dir", r.gitDir, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", r.o.URL, refspec)
	out, err := r.git(ctx, args...)
	if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "git -c:", "git fetch:", 1))
	}
	return out, nil
}

// Has reports whether the cache has commit.
func (r *Repo) Has(ctx context.Context, commit string) bool {
	if r.cache.known(commit) {
		return true
	}
	_, err := r.batch.Object(ctx, commit+"^{commit}")
	if err == nil && IsSHA(commit) {
		r.cache.remember(commit)
	}
	return err == nil
}

var shaRe = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// IsSHA reports whether s is a full commit id.
func IsSHA(s string) bool { return shaRe.MatchString(s) }

// FetchCommit makes sure the cache has commit: it fetches the branch, and if
// the commit is still missing, asks the remote for it by id.
func (r *Repo) FetchCommit(ctx context.Context, commit string) error {
	if !IsSHA(commit) {
		return fmt.Errorf("%q is not a full commit id", commit)
	}
	if r.cache.known(commit) {
		return nil
	}
	// One fetch for a burst of deliveries of one push: whoever waited for the
	// lock finds the commit known, without a git process of its own.
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	if r.Has(ctx, commit) {
		return nil
	}
	head, err := r.fetchLocked(ctx, r.o.Branch)
	if err != nil {
		return err
	}
	if head == commit {
		r.cache.remember(commit)
		return nil
	}
	if r.Has(ctx, commit) {
		return nil
	}
	_, err = r.fetchGit(ctx, commit)
	if err != nil || !r.Has(ctx, commit) {
		return fmt.Errorf("commit %s is not in %s: %w", commit[:12], r.o.URL, errors.Join(err, gitfs.ErrNoRef))
	}
	return nil
}

// Resolve turns a commit id, branch or ref of the cache into a full commit id.
func (r *Repo) Resolve(ctx context.Context, rev string) (string, error) {
	if strings.HasPrefix(rev, "-") {
		return "", fmt.Errorf("%q is not a revision", rev)
	}
	o, err := r.batch.Object(ctx, rev+"^{commit}")
	if errors.Is(err, gitfs.ErrMissing) {
		return "", fmt.Errorf("%s: %w", rev, gitfs.ErrNoRef)
	}
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", rev, err)
	}
	return o.ID, nil
}

// Commit describes one commit.
type Commit struct {
	SHA     string    `json:"sha"`
	Subject string    `json:"subject"`
	Message string    `json:"message"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
}

// Describe reads a commit's message, author and time (committer time), from
// the commit object through the cache's object reader.
func (r *Repo) Describe(ctx context.Context, commit string) (Commit, error) {
	if strings.HasPrefix(commit, "-") {
		return Commit{}, fmt.Errorf("%q is not a revision", commit)
	}
	o, err := r.batch.Object(ctx, commit+"^{commit}")
	if err != nil {
		return Commit{}, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	c, err := parseCommit(o.Data)
	if err != nil {
		return Commit{}, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	c.SHA = o.ID
	return c, nil
}

// parseCommit reads a raw commit object: headers ("author Name <mail> secs
// zone", continuation lines start with a space), a blank line, the message.
func parseCommit(data []byte) (Commit, error) {
	head, msg, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		head = bytes.TrimSuffix(data, []byte("\n"))
	}
	var c Commit
	for _, line := range strings.Split(string(head), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "author":
			if i := strings.LastIndex(v, " <"); i >= 0 {
				c.Author = v[:i]
			}
		case "committer":
			f := strings.Fields(v)
			if len(f) < 2 {
				return Commit{}, errors.New("a committer line without a time")
			}
			sec, err := strconv.ParseInt(f[len(f)-2], 10, 64)
			if err != nil {
				return Commit{}, fmt.Errorf("committer time: %w", err)
			}
			c.Time = time.Unix(sec, 0).UTC()
		}
	}
	c.Message = strings.TrimSpace(string(msg))
	c.Subject, _, _ = strings.Cut(c.Message, "\n")
	return c, nil
}

// Tree opens a commit's tree from the cache as an fs.FS.
func (r *Repo) Tree(ctx context.Context, commit string) (*gitfs.Tree, error) {
	return r.cachedTree(ctx, commit)
}

// Revision is what an image built from commit records.
func (r *Repo) Revision(ctx context.Context, commit string) (gitfs.Revision, error) {
	c, err := r.Describe(ctx, commit)
	if err != nil {
		return gitfs.Revision{}, err
	}
	return gitfs.Revision{Commit: c.SHA, Time: c.Time, Source: StripCredentials(r.o.URL)}, nil
}

// StripCredentials removes user:password@ from a URL.
func StripCredentials(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil || p.Scheme == "" {
		return u
	}
	p.User = nil
	return p.String()
}
