package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so another process may take it first;
// servers that can listen on ":0" themselves should prefer that.
//
// It picks below the kernel's ephemeral range, where no listen on ":0" and
// no outgoing connection lands, and never returns a port twice in one test
// binary: a port just released by ":0" may be handed out again at once, and
// two of them for one test (a router and Pebble's challenge server, say)
// then collide.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 10000, ephemeralStart()-1
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		given[p] = true
		return p
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
			return 0
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[p] {
			given[p] = true
			return p
		}
	}
	t.Fatal("finding a free port: every port tried was taken")
	return 0
}

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// ephemeralStart is where the kernel's ephemeral ports begin (32768 where
// it cannot be read), and never below 20000.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 20000 {
		return 32768
	}
	return n
}
