package iproute

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/dataplane/route"
)

// GetOptions are the `ip route get` arguments besides the destination.
type GetOptions struct {
	// From is `from ADDR` (the flow's source); invalid when not given.
	From netip.Addr
	// Mark is `mark N`.
	Mark uint32
	// UID is the caller's uid the kernel echoes (`uid 0` for root).
	UID int
}

// PrintRouteGet prints what `ip route get DST [from SRC] [mark M]` prints for a locally
// generated packet, from the model's FIB lookup (iproute2 6.1.0, Linux 6.x):
//
//	10.0.8.5 via 172.31.1.2 dev tunl0 src 10.0.7.0 uid 0 \n    cache \n
//	local 172.31.1.1 dev lo src 172.31.1.1 uid 0 \n    cache <local> \n
//
// A failed lookup returns the error the tool prints ("RTNETLINK answers: Network is
// unreachable", "... Invalid argument" for a blackhole, "... No route to host",
// "... Permission denied").
func PrintRouteGet(w io.Writer, s *route.Stack, dst netip.Addr, o GetOptions) error {
	res, err := s.Lookup(dst, route.LookupOptions{Src: o.From, Mark: o.Mark})
	if err != nil {
		var le *route.LookupError
		if errors.As(err, &le) {
			switch le.Kind {
			case route.ErrProhibited:
				return errors.New("RTNETLINK answers: Permission denied")
			case route.ErrHostUnreachable:
				return errors.New("RTNETLINK answers: No route to host")
			case route.ErrBlackholed:
				return errors.New("RTNETLINK answers: Invalid argument")
			}
			return errors.New("RTNETLINK answers: Network is unreachable")
		}
		return err
	}
	var b strings.Builder
	cache := ""
	switch res.Type {
	case route.TypeBlackhole:
		return errors.New("RTNETLINK answers: Invalid argument")
	case route.TypeLocal:
		b.WriteString("local ")
		cache = "<local> "
	case route.TypeBroadcast:
		b.WriteString("broadcast ")
		cache = "<local,brd> "
	}
	fmt.Fprintf(&b, "%s ", dst)
	if o.From.IsValid() {
		fmt.Fprintf(&b, "from %s ", o.From)
	}
	if res.Gateway.IsValid() {
		fmt.Fprintf(&b, "via %s ", res.Gateway)
	}
	fmt.Fprintf(&b, "dev %s ", res.Dev)
	if !o.From.IsValid() && res.Src.IsValid() {
		fmt.Fprintf(&b, "src %s ", res.Src)
	}
	if o.Mark != 0 {
		fmt.Fprintf(&b, "mark %#x ", o.Mark)
	}
	fmt.Fprintf(&b, "uid %d \n    cache %s\n", o.UID, cache)
	_, err = io.WriteString(w, b.String())
	return err
}
