package source

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// KeepSnapshots is how many commit snapshots stay on disk.
const KeepSnapshots = 4

// Snapshot writes the exact tree of commit (git archive, so no .git, no
// untracked or modified files: it cannot be dirty) into a directory and
// returns it. Composition reads its sources from there; a second call for the
// same commit reuses it. release lets pruning remove it again.
func (r *Repo) Snapshot(ctx context.Context, commit string) (dir string, release func(), err error) {
	if !IsSHA(commit) {
		return "", nil, fmt.Errorf("%q is not a full commit id", commit)
	}
	dir, err = r.snapshot(ctx, commit)
	if err != nil {
		return "", nil, err
	}
	r.snapMu.Lock()
	r.inUse[commit]++
	r.snapMu.Unlock()
	var once sync.Once
	return dir, func() {
		once.Do(func() {
			r.snapMu.Lock()
			r.inUse[commit]--
			r.snapMu.Unlock()
		})
	}, nil
}

func (r *Repo) snapshot(ctx context.Context, commit string) (string, error) {
	mu := r.snapLock(commit)
	mu.Lock()
	defer mu.Unlock()
	root := filepath.Join(r.o.CacheDir, "trees")
	dir := filepath.Join(root, commit)
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		now := time.Now()
		os.Chtimes(dir, now, now) // recently used: pruned last
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	b := make([]byte, 6)
	rand.Read(b)
	tmp := filepath.Join(root, ".tmp-"+commit[:12]+"-"+hex.EncodeToString(b))
	if err := r.extract(ctx, commit, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("snapshot of %s: %w", commit[:12], err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	r.prune(root)
	return dir, nil
}

func (r *Repo) snapLock(commit string) *sync.Mutex {
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	if r.snaps[commit] == nil {
		r.snaps[commit] = &sync.Mutex{}
	}
	return r.snaps[commit]
}

func (r *Repo) extract(ctx context.Context, commit, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	env, err := r.env()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "git", "--git-dir", r.gitDir, "archive", "--format=tar", commit)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	xerr := untar(out, dst)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if werr != nil {
		return fmt.Errorf("git archive: %s %w", stderr.String(), werr)
	}
	return xerr
}

func untar(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if !filepath.IsLocal(h.Name) {
			return fmt.Errorf("archive entry %q leaves the tree", h.Name)
		}
		p := filepath.Join(dst, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeReg:
			mode := fs.FileMode(0o644)
			if h.Mode&0o111 != 0 {
				mode = 0o755
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// prune removes all but the KeepSnapshots most recently used snapshots.
func (r *Repo) prune(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type snap struct {
		name string
		t    time.Time
	}
	var snaps []snap
	for _, e := range ents {
		if !IsSHA(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			snaps = append(snaps, snap{e.Name(), fi.ModTime()})
		}
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].t.After(snaps[j].t) })
	for i := KeepSnapshots; i < len(snaps); i++ {
		mu := r.snapLock(snaps[i].name)
		if !mu.TryLock() {
			continue
		}
		r.snapMu.Lock()
		busy := r.inUse[snaps[i].name] > 0
		r.snapMu.Unlock()
		if !busy {
			os.RemoveAll(filepath.Join(root, snaps[i].name))
		}
		mu.Unlock()
	}
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
