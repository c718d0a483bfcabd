package dockerbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// statEntry is what a context file's content hash was computed for.
type statEntry struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	Ino   uint64 `json:"ino"`
	Mode  uint32 `json:"mode"`
	Sum   string `json:"sum"`
}

// racyWindow: a file changed this recently may change again within the
// same mtime tick, so its hash is not kept (git's "racy" rule).
const racyWindow = 2 * time.Second

// DigestCached is the context's digest over each file's name, mode, link
// target and content hash. With cachePath, content hashes are kept there
// and reused for files whose size, mtime, inode and mode are unchanged, so
// that a rebuild with nothing changed reads no file; "" keeps none.
func (c *Context) DigestCached(cachePath string) (string, error) {
	old := map[string]statEntry{}
	if cachePath != "" {
		if b, err := os.ReadFile(cachePath); err == nil {
			json.Unmarshal(b, &old)
		}
	}
	kept := map[string]statEntry{}
	h := sha256.New()
	now := time.Now()
	for _, rel := range c.files {
		st, err := os.Lstat(filepath.Join(c.Dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", fmt.Errorf("build context %s: %w", rel, err)
		}
		link, sum := "", ""
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			link, _ = os.Readlink(filepath.Join(c.Dir, filepath.FromSlash(rel)))
		case st.Mode().IsRegular():
			e := entryOf(st)
			if prev, ok := old[rel]; ok && prev.Sum != "" && prev == (statEntry{e.Size, e.MTime, e.Ino, e.Mode, prev.Sum}) {
				sum = prev.Sum
			} else if sum, err = fileSum(filepath.Join(c.Dir, filepath.FromSlash(rel))); err != nil {
				return "", fmt.Errorf("build context %s: %w", rel, err)
			}
			if now.Sub(st.ModTime()) > racyWindow {
				e.Sum = sum
				kept[rel] = e
			}
		}
		fmt.Fprintf(h, "%q %o %q %d %s\n", rel, uint32(st.Mode()), link, st.Size()*boolInt(st.Mode().IsRegular()), sum)
	}
	if cachePath != "" {
		if b, err := json.Marshal(kept); err == nil {
			tmp := cachePath + ".tmp"
			if os.WriteFile(tmp, b, 0o600) == nil {
				os.Rename(tmp, cachePath)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func entryOf(st fs.FileInfo) statEntry {
	e := statEntry{Size: st.Size(), MTime: st.ModTime().UnixNano(), Mode: uint32(st.Mode())}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.Ino = sys.Ino
	}
	return e
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
