package proxybench

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime is the user+system CPU time pid and its direct children (nginx's
// workers) have used, from /proc; 0 where /proc is not there. Unlike
// throughput, CPU per request hardly depends on what else the machine runs.
func CPUTime(pid int) time.Duration {
	total := procCPU(strconv.Itoa(pid))
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if ppid(e.Name()) == pid {
			total += procCPU(e.Name())
		}
	}
	return total
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ppid(pid string) int {
	f := statFields(pid)
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// procCPU reads utime+stime (fields 14 and 15 of stat; 100 ticks a second).
func procCPU(pid string) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// Pid is nginx's master process id.
func (n *Nginx) Pid() int { return n.cmd.Process.Pid }
