//go:build !unix

package process

import (
	"errors"
	"os"
	"syscall"
)

const supported = false

var errUnsupported = errors.New("the process runtime needs a Unix system")

func groupAttr() *syscall.SysProcAttr                { return nil }
func signalGroup(pgid int, sig syscall.Signal) error { return errUnsupported }
func groupExists(pgid int) bool                      { return false }
func lockFile(path string) (func(), error)           { return nil, errUnsupported }
func exitStatus(ps *os.ProcessState) int             { return ps.ExitCode() }
func procStart(pid int) (ticks uint64, alive bool)   { return 0, false }
