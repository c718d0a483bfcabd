package gitfs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrMissing means the repository has no object by that name.
var ErrMissing = errors.New("no such object")

// Object is one git object read through a Batch.
type Object struct {
	ID   string
	Type string
	Data []byte
}

// Batch reads objects through one long-lived `git cat-file --batch` process.
// A read is a pipe round trip instead of a git process of its own (a few ms
// each, tens of ms on a loaded machine): serve's webhook decisions read a
// commit, its changed trees and its config through it and fit in the answer.
// Objects a fetch adds later are found too (git rescans its packs on a miss).
// The process exits after an idle minute and is started again on demand.
type Batch struct {
	gitDir string
	env    []string
	idle   time.Duration

	mu    sync.Mutex
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	timer *time.Timer

	treeMu sync.Mutex
	trees  map[string][]treeEntry // parsed tree objects by id (immutable)
}

type treeEntry struct {
	mode, name, id string
}

// maxTrees bounds the parsed trees a Batch keeps; a new commit shares most of
// its trees with the one before, so only its changed directories are read.
const maxTrees = 20000

// NewBatch reads objects of the repository at gitDir (bare or a .git
// directory); env is the git processes' environment (nil: this process's).
func NewBatch(gitDir string, env []string) *Batch {
	if env == nil {
		env = os.Environ()
	}
	return &Batch{gitDir: gitDir, env: env, idle: time.Minute, trees: map[string][]treeEntry{}}
}

// GitDir is the repository the batch reads.
func (b *Batch) GitDir() string { return b.gitDir }

// Object reads the object name names: an id, a ref, or rev^{type}. A name
// git does not know is ErrMissing.
func (b *Batch) Object(ctx context.Context, name string) (Object, error) {
	if name == "" || strings.ContainsAny(name, "\n\r\x00") {
		// One name per line: a newline would smuggle in a second request.
		return Object{}, fmt.Errorf("%q is not an object name", name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.roundTrip(ctx, name)
	if err != nil && !errors.Is(err, ErrMissing) && ctx.Err() == nil {
		// The process may have exited under us (killed, idle race): once more on a fresh one.
		o, err = b.roundTrip(ctx, name)
	}
	return o, err
}

func (b *Batch) roundTrip(ctx context.Context, name string) (Object, error) {
	if b.cmd == nil {
		if err := b.start(); err != nil {
			return Object{}, err
		}
	}
	// A read that hangs (a wedged process) ends with the caller's context.
	cmd := b.cmd
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	o, err := b.exchange(name)
	if err != nil && !errors.Is(err, ErrMissing) {
		b.stopLocked()
		return Object{}, fmt.Errorf("git cat-file %s: %w", name, err)
	}
	b.timer.Reset(b.idle)
	return o, err
}

func (b *Batch) exchange(name string) (Object, error) {
	if _, err := io.WriteString(b.in, name+"\n"); err != nil {
		return Object{}, err
	}
	hdr, err := b.out.ReadString('\n')
	if err != nil {
		return Object{}, err
	}
	f := strings.Fields(hdr)
	if len(f) == 2 && (f[1] == "missing" || f[1] == "ambiguous") {
		return Object{}, fmt.Errorf("%s: %s: %w", name, f[1], ErrMissing)
	}
	if len(f) != 3 {
		return Object{}, fmt.Errorf("unexpected answer %q", strings.TrimSpace(hdr))
	}
	size, err := strconv.Atoi(f[2])
	if err != nil || size < 0 {
		return Object{}, fmt.Errorf("unexpected size in %q", strings.TrimSpace(hdr))
	}
	data := make([]byte, size+1)
	if _, err := io.ReadFull(b.out, data); err != nil {
		return Object{}, err
	}
	return Object{ID: f[0], Type: f[1], Data: data[:size]}, nil
}

func (b *Batch) start() error {
	cmd := exec.Command("git", "--git-dir", b.gitDir, "cat-file", "--batch")
	cmd.Env = b.env
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting git cat-file: %w", err)
	}
	b.cmd, b.in, b.out = cmd, in, bufio.NewReaderSize(out, 64<<10)
	if b.timer == nil {
		b.timer = time.AfterFunc(b.idle, b.idleStop)
	}
	return nil
}

func (b *Batch) idleStop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
}

func (b *Batch) stopLocked() {
	if b.cmd == nil {
		return
	}
	b.in.Close()
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
	b.cmd, b.in, b.out = nil, nil, nil
}

// Close ends the process (a later read starts it again).
func (b *Batch) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopLocked()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return nil
}

// tree reads and parses one tree object, once.
func (b *Batch) tree(ctx context.Context, id string) ([]treeEntry, error) {
	b.treeMu.Lock()
	ents, ok := b.trees[id]
	b.treeMu.Unlock()
	if ok {
		return ents, nil
	}
	o, err := b.Object(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Type != "tree" {
		return nil, fmt.Errorf("object %s is a %s, not a tree", id, o.Type)
	}
	ents, err = parseTree(o.Data, len(id)/2)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id, err)
	}
	b.treeMu.Lock()
	if len(b.trees) >= maxTrees {
		clear(b.trees)
	}
	b.trees[id] = ents
	b.treeMu.Unlock()
	return ents, nil
}

// parseTree reads git's binary tree format: "<mode> <name>\0<raw id>" repeated.
func parseTree(data []byte, idLen int) ([]treeEntry, error) {
	var out []treeEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		nul := bytes.IndexByte(data, 0)
		if sp < 0 || nul < sp || len(data) < nul+1+idLen {
			return nil, errors.New("malformed tree object")
		}
		mode := string(data[:sp])
		if len(mode) < 6 {
			// Trees store "40000"; ls-tree (and Entry) say "040000".
			mode = strings.Repeat("0", 6-len(mode)) + mode
		}
		out = append(out, treeEntry{mode: mode, name: string(data[sp+1 : nul]), id: fmt.Sprintf("%x", data[nul+1:nul+1+idLen])})
		data = data[nul+1+idLen:]
	}
	return out, nil
}

// OpenBatch reads the whole tree of ref through b, like OpenRepo but without a
// git process: only the trees b has not parsed before are read.
func OpenBatch(ctx context.Context, b *Batch, ref string) (*Tree, error) {
	c, err := b.Object(ctx, ref+"^{commit}")
	if errors.Is(err, ErrMissing) {
		return nil, fmt.Errorf("%s: %w", ref, ErrNoRef)
	}
	if err != nil {
		return nil, err
	}
	root, ok := bytes.CutPrefix(c.Data, []byte("tree "))
	if !ok || bytes.IndexByte(root, '\n') < 0 {
		return nil, fmt.Errorf("commit %s has no tree line", c.ID)
	}
	t := &Tree{ctx: ctx, toplevel: b.gitDir, Commit: c.ID, entries: map[string]Entry{}, dirs: map[string][]string{".": nil},
		blobs: map[string][]byte{}, batch: b}
	if err := t.walk(ctx, "", string(root[:bytes.IndexByte(root, '\n')])); err != nil {
		return nil, fmt.Errorf("listing %s: %w", c.ID, err)
	}
	for d := range t.dirs {
		sort.Strings(t.dirs[d])
	}
	return t, nil
}

func (t *Tree) walk(ctx context.Context, dir, id string) error {
	ents, err := t.batch.tree(ctx, id)
	if err != nil {
		return err
	}
	key := dir
	if key == "" {
		key = "."
	}
	for _, e := range ents {
		p := path.Join(dir, e.name)
		t.entries[p] = Entry{Mode: e.mode, Hash: e.id}
		t.dirs[key] = append(t.dirs[key], e.name)
		if e.mode == "040000" {
			t.dirs[p] = nil
			if err := t.walk(ctx, p, e.id); err != nil {
				return err
			}
		}
	}
	return nil
}
