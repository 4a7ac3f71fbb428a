package route

import "net/netip"

// AddrFlags are address flags (IFA_F_*), printed in iproute2 order.
type AddrFlags uint32

// Address flags, in the order `ip addr` prints them.
const (
	AddrSecondary AddrFlags = 1 << iota
	AddrNoDAD
	AddrOptimistic
	AddrDADFailed
	AddrHomeAddress
	AddrDeprecated
	AddrTentative
	AddrPermanent // printed as absence of "dynamic"
	AddrManageTempAddr
	AddrNoPrefixRoute
	AddrMcAutoJoin
	AddrStablePrivacy
)

var addrFlagNames = []string{"secondary", "nodad", "optimistic", "dadfailed", "home",
	"deprecated", "tentative", "", "mngtmpaddr", "noprefixroute", "autojoin", "stable-privacy"}

// Names returns the printable flags in iproute2 order ("dynamic" when not permanent is the
// printer's business).
func (f AddrFlags) Names() []string {
	var out []string
	for i, n := range addrFlagNames {
		if n != "" && f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseAddrFlag returns the flag for an `ip addr` token ("primary" parses as 0).
func ParseAddrFlag(s string) (AddrFlags, bool) {
	if s == "primary" || s == "dynamic" {
		return 0, true
	}
	for i, n := range addrFlagNames {
		if n != "" && n == s {
			return 1 << i, true
		}
	}
	return 0, false
}

// Forever is the lifetime printed as "forever".
const Forever uint32 = 0xffffffff

// Addr is one interface address (netlink.Addr with netip).
type Addr struct {
	// Dev is the device's name.
	Dev string
	// Prefix is the local address with its prefix length (10.0.7.5/32).
	Prefix netip.Prefix
	// Peer is the point-to-point peer prefix (`peer`), invalid when none.
	Peer netip.Prefix
	// Broadcast is the `brd` address, invalid when none.
	Broadcast netip.Addr
	Scope     Scope
	// Label is the IPv4 label, the device name unless set (`eth0:1`).
	Label string
	Flags AddrFlags
	// ValidLft and PreferredLft are in seconds; Forever prints "forever".
	ValidLft, PreferredLft uint32
	// Proto is the address protocol (`proto kernel_ll`), empty when unset.
	Proto string
	// Metric is the prefix route metric (`metric N`).
	Metric int
}
