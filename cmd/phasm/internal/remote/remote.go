// Package remote is the seam where the phasm binary will reach a cluster
// as a client: `phasm load --target host:port,...` and `phasm load
// --verify --target`. The load client (an actor.Client driven by a
// cluster view) is not wired yet, so Dial validates the addresses and
// returns ErrNeedsCluster; callers report it as a failure (exit 1) with
// that message. (`phasm status --target` reads cluster.FetchStatus
// directly.) CheckAddress validates host:port flags.
package remote

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrNeedsCluster is returned by every operation that needs a cluster.
var ErrNeedsCluster = errors.New("not available yet: needs the cluster client")

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

// Dial validates the cluster members' addresses and will connect to the
// cluster; for now it returns ErrNeedsCluster (or the address problems).
func Dial(targets []string) error {
	var errs []error
	for _, t := range targets {
		if err := CheckAddress(t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fmt.Errorf("cluster %v: %w", targets, ErrNeedsCluster)
}
