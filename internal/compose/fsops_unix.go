//go:build linux || darwin

package compose

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processUmask reads the umask without changing it (no window where another goroutine sees 0).
func processUmask() fs.FileMode {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return fs.FileMode(m)
				}
			}
		}
	}
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	return fs.FileMode(old)
}

func sysMode(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		o |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		o |= syscall.S_ISVTX
	}
	return o
}

// writeNew creates dst (which must not exist) with exactly mode, filled from data
// or, when data is nil, copied from the file at src. It returns the new file's stat.
func writeNew(dst string, mode fs.FileMode, umask fs.FileMode, data []byte, src string) (StatKey, error) {
	if data == nil {
		return copyNew(dst, mode, src)
	}
	// Raw syscalls: a regular file gains nothing from the runtime poller, and these
	// few calls per file are the whole cost of composing small files.
	fd, err := syscall.Open(dst, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, sysMode(mode))
	if err != nil {
		return StatKey{}, &fs.PathError{Op: "create", Path: dst, Err: err}
	}
	fail := func(op string, err error) (StatKey, error) {
		syscall.Close(fd)
		os.Remove(dst)
		return StatKey{}, &fs.PathError{Op: op, Path: dst, Err: err}
	}
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fail("write", err)
		}
		data = data[n:]
	}
	if mode&umask != 0 || mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		if err := syscall.Fchmod(fd, sysMode(mode)); err != nil {
			return fail("chmod", err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fail("stat", err)
	}
	if err := syscall.Close(fd); err != nil {
		os.Remove(dst)
		return StatKey{}, &fs.PathError{Op: "close", Path: dst, Err: err}
	}
	return statKey(&st), nil
}

// copyNew copies a large file; os.File's ReadFrom uses copy_file_range where the kernel has it.
func copyNew(dst string, mode fs.FileMode, src string) (StatKey, error) {
	in, err := os.Open(src)
	if err != nil {
		return StatKey{}, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return StatKey{}, err
	}
	fail := func(err error) (StatKey, error) {
		out.Close()
		os.Remove(dst)
		return StatKey{}, err
	}
	if _, err := io.Copy(out, in); err != nil {
		return fail(fmt.Errorf("copying %s: %w", src, err))
	}
	if err := out.Chmod(mode); err != nil {
		return fail(err)
	}
	fi, err := out.Stat()
	if err != nil {
		return fail(err)
	}
	if err := out.Close(); err != nil {
		os.Remove(dst)
		return StatKey{}, err
	}
	return statKey(fi.Sys().(*syscall.Stat_t)), nil
}

func lstatKey(p string) (StatKey, Kind, fs.FileMode, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return StatKey{}, 0, 0, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return fromStat(&st)
}

func fromStat(st *syscall.Stat_t) (StatKey, Kind, fs.FileMode, error) {
	var k Kind
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		k = File
	case syscall.S_IFDIR:
		k = Dir
	case syscall.S_IFLNK:
		k = Symlink
	default:
		k = '?'
	}
	m := fs.FileMode(st.Mode & 0o777)
	if st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return statKey(st), k, m, nil
}
