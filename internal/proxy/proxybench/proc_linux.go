package proxybench

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the child get sig when the bench dies, so that no
// backend or nginx outlives an interrupted run.
func setDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: sig}
}
