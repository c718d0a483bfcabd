package process

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/slipway-dev/slipway/internal/driver"
)

var _ driver.StatsReader = (*Driver)(nil)

// Stats sums the resident memory of every process in the instance's process
// group (the app and whatever it started), from /proc. Where there is no
// /proc it reports 0.
func (d *Driver) Stats(ctx context.Context, id string) (driver.Stats, error) {
	r, err := d.readRecord(id)
	if err != nil {
		return driver.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return driver.Stats{}, nil
	}
	var total int64
	page := int64(os.Getpagesize())
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pgrp, rss, ok := procGroupRSS(pid); ok && pgrp == r.PGID {
			total += rss * page
		}
	}
	return driver.Stats{MemoryBytes: total}, nil
}

// procGroupRSS reads a process's group (field 5) and resident pages (field 24) from /proc/<pid>/stat.
func procGroupRSS(pid int) (pgrp int, rss int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 22 {
		return 0, 0, false
	}
	pgrp, err1 := strconv.Atoi(string(f[2]))
	rss, err2 := strconv.ParseInt(string(f[21]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return pgrp, rss, true
}
