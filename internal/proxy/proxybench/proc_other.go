//go:build !linux

package proxybench

import (
	"os/exec"
	"syscall"
)

func setDeathSignal(*exec.Cmd, syscall.Signal) {}

// StopUnder does nothing without /proc to find the processes by.
func StopUnder(string) {}
