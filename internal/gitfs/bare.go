package gitfs

import (
	"context"
	"fmt"
	"strings"
)

// OpenRepo reads the whole tree of ref in the repository at gitDir, which may
// be bare: the server builds from a cache of fetched commits and never has a
// working tree.
func OpenRepo(ctx context.Context, gitDir, ref string) (*Tree, error) {
	t := &Tree{ctx: ctx, toplevel: gitDir, entries: map[string]Entry{}, dirs: map[string][]string{}, blobs: map[string][]byte{}}
	commit, err := git(ctx, gitDir, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, ErrNoRef)
	}
	t.Commit = strings.TrimSpace(string(commit))
	return t, t.read("", true)
}
