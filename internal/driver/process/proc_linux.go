package process

import (
	"bytes"
	"os"
	"strconv"
)

// procStart reads /proc/<pid>/stat: the process's start time in clock ticks
// since boot (field 22), which together with the pid identifies a process
// even after the pid is reused, and whether it is alive (a zombie is not:
// it has exited and waits only to be reaped).
func procStart(pid int) (ticks uint64, alive bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself; the fields after the last ')' are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, false
	}
	state := f[0] // field 3
	if len(state) > 0 && (state[0] == 'Z' || state[0] == 'X') {
		return 0, false
	}
	t, err := strconv.ParseUint(string(f[19]), 10, 64) // field 22
	if err != nil {
		return 0, false
	}
	return t, true
}
