//go:build linux

package kernel

import (
	"fmt"

	"github.com/vishvananda/netns"
)

// CurrentNS returns the calling process's own network namespace, for reading it (the
// snapshot collector reads the host's namespace this way and never changes it). Close
// releases the file descriptor; Delete must not be called on it.
func CurrentNS() (*NS, error) {
	fd, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open the current network namespace: %w", err)
	}
	return &NS{fd: fd}, nil
}
