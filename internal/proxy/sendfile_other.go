//go:build !linux

package proxy

import "errors"

const canSendfile = false

type sendfileState struct{}

func (c *limitedConn) canSendfile() bool { return false }

func (c *limitedConn) sendHeadFile([]byte, *keptFile, int64) error {
	return errors.New("sendfile: not on this system")
}
