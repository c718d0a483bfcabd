package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/slipway-dev/slipway/internal/seal"
)

// secureDataDir makes the state dir private to serve's user whatever existed
// before: the dir and its subdirs 0700, its files 0600 (state.db and its WAL,
// router.json, master.key, logs). Files deeper down keep their modes (unpacked
// images need their exec bits); the 0700 dirs above them keep others out.
func secureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("making %s private: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		mode := fs.FileMode(0o600)
		switch {
		case e.Type()&fs.ModeSymlink != 0, e.Type()&fs.ModeSocket != 0:
			continue // a stale API socket is removed by Listen; links are not followed
		case e.IsDir():
			mode = 0o700
		}
		if err := os.Chmod(p, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("making %s private: %w", p, err)
		}
	}
	// SQLite creates the database with the umask's mode and gives its WAL and
	// SHM files the database's mode: create it 0600 first.
	f, err := os.OpenFile(filepath.Join(dir, "state.db"), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// openSealer loads the master key (SLIPWAY_MASTER_KEY or <dir>/master.key,
// generated on first start) and makes the state seal with it.
func (s *Server) openSealer(ctx context.Context) error {
	box, err := seal.Load(s.o.DataDir, s.o.Getenv)
	if err != nil {
		return err
	}
	if err := s.State.UseSealer(ctx, box); err != nil {
		return fmt.Errorf("%w (key from %s)", err, box.Source)
	}
	return nil
}
