package proxybench

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// setDeathSignal makes the child get sig when the bench dies, so that no
// backend or nginx outlives an interrupted run.
func setDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: sig}
}

// StopUnder kills the process groups of processes whose working directory
// is under dir (the process runtime's root filesystems live there).
func StopUnder(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err == nil && strings.HasPrefix(cwd, dir+"/") {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
