package gitfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Revision describes the commit a build comes from.
type Revision struct {
	// Commit is the full SHA of HEAD.
	Commit string
	// Time is the commit time (for reproducible mtimes when SOURCE_DATE_EPOCH is unset).
	Time time.Time
	// Dirty is true when dir has uncommitted changes or untracked files.
	Dirty bool
	// DirtyHash identifies the uncommitted state (empty when clean).
	DirtyHash string
	// Source is the origin remote's URL, credentials removed; "" when none.
	Source string
}

// ErrDirty is returned by Tag for a dirty tree when dirty builds are not allowed.
var ErrDirty = errors.New("the working tree has uncommitted changes")

// Tag is the image tag for the revision: the commit SHA, or
// <sha>-dirty-<hash> for an allowed dirty tree.
func (r Revision) Tag(allowDirty bool) (string, error) {
	if !r.Dirty {
		return r.Commit, nil
	}
	if !allowDirty {
		return "", fmt.Errorf("%w: commit them, or pass --allow-dirty to tag the images %s-dirty-<hash>", ErrDirty, r.Commit[:12])
	}
	return r.Commit + "-dirty-" + r.DirtyHash, nil
}

// Describe reads HEAD and the state of the work tree under dir.
func Describe(ctx context.Context, dir string) (Revision, error) {
	var r Revision
	out, err := git(ctx, dir, "log", "-1", "--format=%H %ct")
	if err != nil {
		return r, fmt.Errorf("%s: reading the commit (is it a git repository with at least one commit?): %w", dir, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return r, fmt.Errorf("%s: unexpected git log output %q", dir, out)
	}
	r.Commit = f[0]
	sec, _ := strconv.ParseInt(f[1], 10, 64)
	r.Time = time.Unix(sec, 0).UTC()
	// Only the monorepo directory counts: changes elsewhere in the repository do not change what is built.
	status, err := git(ctx, dir, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
	if err != nil {
		return r, err
	}
	if len(status) > 0 {
		r.Dirty = true
		h := sha256.New()
		diff, err := git(ctx, dir, "diff", "HEAD", "--binary", "--", ".")
		if err != nil {
			return r, err
		}
		h.Write(diff)
		untracked, err := git(ctx, dir, "ls-files", "-z", "--others", "--exclude-standard", "--", ".")
		if err != nil {
			return r, err
		}
		for _, p := range strings.Split(string(untracked), "\x00") {
			if p == "" {
				continue
			}
			h.Write([]byte(p + "\x00"))
			if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
				h.Write(b)
			}
		}
		r.DirtyHash = hex.EncodeToString(h.Sum(nil))[:12]
	}
	if url, err := git(ctx, dir, "config", "--get", "remote.origin.url"); err == nil {
		r.Source = stripCredentials(strings.TrimSpace(string(url)))
	}
	return r, nil
}

// stripCredentials removes user:password@ from a URL so it can go into a label.
func stripCredentials(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		rest = rest[at+1:]
	}
	return scheme + "://" + rest
}
