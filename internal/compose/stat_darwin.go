package compose

import "syscall"

func statKey(s *syscall.Stat_t) StatKey {
	return StatKey{
		Dev: uint64(s.Dev), Ino: uint64(s.Ino), Size: s.Size,
		Mtime: s.Mtimespec.Sec*1e9 + s.Mtimespec.Nsec, Ctime: s.Ctimespec.Sec*1e9 + s.Ctimespec.Nsec,
		Mode: uint32(s.Mode),
	}
}
