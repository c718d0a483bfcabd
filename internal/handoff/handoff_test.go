package handoff

import (
	"net"
	"path/filepath"
	"testing"
)

// Inherited sockets go to the listener named like them, else to the one on
// their address; anything else is a new socket.
func TestListenTakesInherited(t *testing.T) {
	a, _ := net.Listen("tcp", "127.0.0.1:0")
	b, _ := net.Listen("tcp", "127.0.0.1:0")
	sock := filepath.Join(t.TempDir(), "api.sock")
	u, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l := &Listeners{inherited: []*inherited{{name: "http", ln: a}, {name: "slipway.socket", ln: b}, {name: "slipway.socket", ln: u}}}
	got, err := l.Listen("http", "tcp", "127.0.0.1:1") // by name, whatever the address
	if err != nil || got != a {
		t.Fatalf("by name: %v %v", got, err)
	}
	if got, err := l.Listen("registry", "tcp", b.Addr().String()); err != nil || got != b {
		t.Fatalf("by address: %v %v", got, err)
	}
	if got, err := l.Listen("api", "unix", sock); err != nil || got != u {
		t.Fatalf("unix by path: %v %v", got, err)
	}
	fresh, err := l.Listen("metrics", "tcp", "127.0.0.1:0")
	if err != nil || fresh == a || fresh == b {
		t.Fatalf("fresh: %v %v", fresh, err)
	}
	defer fresh.Close()
	if !l.Inherited("http") || l.Inherited("metrics") {
		t.Errorf("Inherited: http %v, metrics %v", l.Inherited("http"), l.Inherited("metrics"))
	}
	if len(l.active) != 4 {
		t.Errorf("active listeners: %d, want 4", len(l.active))
	}
}

func TestSameAddr(t *testing.T) {
	any := &net.TCPAddr{IP: net.IPv4zero, Port: 80}
	v6any := &net.TCPAddr{IP: net.IPv6unspecified, Port: 80}
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}
	cases := []struct {
		a    net.Addr
		addr string
		want bool
	}{
		{any, "0.0.0.0:80", true}, {v6any, ":80", true}, {v6any, "0.0.0.0:80", true},
		{lo, "127.0.0.1:80", true}, {lo, "127.0.0.1:81", false}, {lo, "0.0.0.0:80", false},
		{&net.UnixAddr{Name: "/a.sock", Net: "unix"}, "/a.sock", true},
	}
	for _, c := range cases {
		network := "tcp"
		if _, ok := c.a.(*net.UnixAddr); ok {
			network = "unix"
		}
		if got := sameAddr(c.a, network, c.addr); got != c.want {
			t.Errorf("sameAddr(%v, %q) = %v, want %v", c.a, c.addr, got, c.want)
		}
	}
}
