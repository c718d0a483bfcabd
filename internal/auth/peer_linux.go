package auth

import (
	"fmt"
	"net"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerName is "unix:NAME" (or "unix:uid N") for the process at the other end of c.
func peerName(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cred == nil {
		return ""
	}
	if u, err := user.LookupId(strconv.Itoa(int(cred.Uid))); err == nil {
		return "unix:" + u.Username
	}
	return fmt.Sprintf("unix:uid %d", cred.Uid)
}
