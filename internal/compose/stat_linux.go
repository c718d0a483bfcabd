package compose

import "syscall"

func statKey(s *syscall.Stat_t) StatKey {
	return StatKey{
		Dev: uint64(s.Dev), Ino: uint64(s.Ino), Size: s.Size,
		Mtime: s.Mtim.Sec*1e9 + s.Mtim.Nsec, Ctime: s.Ctim.Sec*1e9 + s.Ctim.Nsec,
		Mode: uint32(s.Mode),
	}
}
