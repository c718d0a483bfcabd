//go:build !linux

package proxybench

import (
	"os/exec"
	"syscall"
)

func setDeathSignal(*exec.Cmd, syscall.Signal) {}
