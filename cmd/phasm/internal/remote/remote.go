// Package remote holds what the phasm binary's cluster clients share:
// CheckAddress validates host:port flags (`phasm load --target`,
// `phasm status --target`, `phasm node --listen`). The load driver's
// cluster client lives in package load (cluster.go).
package remote

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrBadAddress wraps an invalid host:port.
var ErrBadAddress = errors.New("invalid address")

// CheckAddress reports whether addr is host:port with a port in 0..65535
// (host may be empty: all interfaces).
func CheckAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrBadAddress, addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%w %q: port must be a number in 0..65535", ErrBadAddress, addr)
	}
	return nil
}
