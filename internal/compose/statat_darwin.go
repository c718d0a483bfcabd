package compose

import (
	"io/fs"
	"path/filepath"
)

func statAt(_ int, dir, name string) (StatKey, Kind, fs.FileMode, error) {
	return lstatKey(filepath.Join(dir, name))
}
