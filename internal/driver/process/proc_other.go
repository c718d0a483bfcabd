//go:build unix && !linux

package process

import (
	"errors"
	"syscall"
)

// procStart reports whether pid is alive. Without /proc the start time is
// unknown (0), so a reused pid cannot be told apart from the original.
func procStart(pid int) (ticks uint64, alive bool) {
	err := syscall.Kill(pid, 0)
	return 0, err == nil || errors.Is(err, syscall.EPERM)
}
