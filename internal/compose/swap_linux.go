package compose

import "golang.org/x/sys/unix"

// exchange atomically swaps two paths, so readers see the old tree or the new one, never neither.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
