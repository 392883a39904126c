//go:build unix

package master

import (
	"net"
	"os"
)

// sdNotify sends state to systemd when it supervises the master
// (Type=notify; NotifyAccess=all lets a new master after an upgrade
// announce itself with MAINPID=). It does nothing without NOTIFY_SOCKET.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
