package compose

import "golang.org/x/sys/unix"

// exchange atomically swaps two paths (renamex_np RENAME_SWAP).
func exchange(a, b string) error {
	return unix.RenamexNp(a, b, unix.RENAME_SWAP)
}
