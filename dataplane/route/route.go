// Package route models the routing half of a Linux network namespace as the kernel keeps it
// and as iproute2 and vishvananda/netlink (v1.3.1) name it: links (physical devices, veth,
// bridge, dummy, ipip, vxlan, loopback), addresses, routes in several tables, policy rules,
// neighbours and bridge fdb entries, with a FIB lookup that does what the Linux kernel's IPv4
// FIB does (policy rules in priority order, longest prefix match, route types, preferred
// source selection as inet_select_addr).
//
// The kernel behaviour mirrored is that of Linux 6.x (fib_add_ifaddr, fib_table_insert,
// fib_table_lookup, fib_rules_lookup, inet_select_addr). Addresses use net/netip; MAC
// addresses use net.HardwareAddr. Nothing here touches the operating system.
package route

import (
	"fmt"
	"net/netip"
	"strconv"
)

// TableID is a routing table number (RT_TABLE_*).
type TableID uint32

// Well-known tables.
const (
	TableUnspec  TableID = 0
	TableDefault TableID = 253
	TableMain    TableID = 254
	TableLocal   TableID = 255
)

// String returns the table's name as iproute2 prints it without an rt_tables file entry:
// "main", "local", "default", else the number.
func (t TableID) String() string {
	switch t {
	case TableMain:
		return "main"
	case TableLocal:
		return "local"
	case TableDefault:
		return "default"
	case TableUnspec:
		return "unspec"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// RouteType is a route type (RTN_*), spelled as `ip route` prints it.
type RouteType string

// Route types.
const (
	TypeUnicast     RouteType = "unicast"
	TypeLocal       RouteType = "local"
	TypeBroadcast   RouteType = "broadcast"
	TypeAnycast     RouteType = "anycast"
	TypeMulticast   RouteType = "multicast"
	TypeBlackhole   RouteType = "blackhole"
	TypeUnreachable RouteType = "unreachable"
	TypeProhibit    RouteType = "prohibit"
	TypeThrow       RouteType = "throw"
	TypeNAT         RouteType = "nat"
)

// RouteTypes lists every route type, for parsers.
var routeTypes = []RouteType{TypeUnicast, TypeLocal, TypeBroadcast, TypeAnycast, TypeMulticast,
	TypeBlackhole, TypeUnreachable, TypeProhibit, TypeThrow, TypeNAT}

// ParseRouteType returns the RouteType for an `ip route` token.
func ParseRouteType(s string) (RouteType, bool) {
	for _, t := range routeTypes {
		if string(t) == s {
			return t, true
		}
	}
	return "", false
}

// Protocol is a route's originator (RTPROT_*). Its String is the iproute2 6.1.0 name
// (lib/rt_names.c + etc/iproute2/rt_protos) or the number.
type Protocol uint8

// Route protocols with names in iproute2 6.1.0, plus the numeric ones Kubernetes CNIs use.
const (
	ProtoUnspec     Protocol = 0
	ProtoRedirect   Protocol = 1
	ProtoKernel     Protocol = 2
	ProtoBoot       Protocol = 3
	ProtoStatic     Protocol = 4
	ProtoGated      Protocol = 8
	ProtoRA         Protocol = 9
	ProtoMRT        Protocol = 10
	ProtoZebra      Protocol = 11
	ProtoBird       Protocol = 12
	ProtoDNRouted   Protocol = 13
	ProtoXORP       Protocol = 14
	ProtoNTK        Protocol = 15
	ProtoDHCP       Protocol = 16
	ProtoKubeRouter Protocol = 17 // kube-router's ZebraOriginator 0x11, printed "17"
	ProtoKeepalived Protocol = 18
	ProtoBabel      Protocol = 42
	ProtoFelix      Protocol = 80 // Calico felix's DefaultRouteProto, printed "80"
	ProtoOpenr      Protocol = 99
	ProtoBGP        Protocol = 186
	ProtoISIS       Protocol = 187
	ProtoOSPF       Protocol = 188
	ProtoRIP        Protocol = 189
	ProtoEIGRP      Protocol = 192
)

var protoNames = map[Protocol]string{
	0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
	10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
	18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
	189: "rip", 192: "eigrp",
}

// String returns the protocol's iproute2 6.1.0 name, or its number.
func (p Protocol) String() string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// ParseProtocol accepts a protocol name or number.
func ParseProtocol(s string) (Protocol, error) {
	for p, n := range protoNames {
		if n == s {
			return p, nil
		}
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown route protocol %q", s)
	}
	return Protocol(n), nil
}

// Scope is a route or address scope (RT_SCOPE_*). Larger values are narrower.
type Scope uint8

// Scopes.
const (
	ScopeUniverse Scope = 0
	ScopeSite     Scope = 200
	ScopeLink     Scope = 253
	ScopeHost     Scope = 254
	ScopeNowhere  Scope = 255
)

// String returns the scope as iproute2 prints it ("global" for universe).
func (s Scope) String() string {
	switch s {
	case ScopeUniverse:
		return "global"
	case ScopeSite:
		return "site"
	case ScopeLink:
		return "link"
	case ScopeHost:
		return "host"
	case ScopeNowhere:
		return "nowhere"
	}
	return strconv.Itoa(int(s))
}

// ParseScope accepts a scope name or number.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "global", "universe":
		return ScopeUniverse, nil
	case "site":
		return ScopeSite, nil
	case "link":
		return ScopeLink, nil
	case "host":
		return ScopeHost, nil
	case "nowhere":
		return ScopeNowhere, nil
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown scope %q", s)
	}
	return Scope(n), nil
}

// RouteFlags are next-hop flags (RTNH_F_*), printed in iproute2 order.
type RouteFlags uint32

// Next-hop flags, in the order `ip route` prints them.
const (
	FlagDead RouteFlags = 1 << iota
	FlagOnlink
	FlagPervasive
	FlagOffload
	FlagTrap
	FlagNotify
	FlagLinkdown
	FlagUnresolved
)

var routeFlagNames = []string{"dead", "onlink", "pervasive", "offload", "trap", "notify", "linkdown", "unresolved"}

// Names returns the set flags' names in iproute2 order.
func (f RouteFlags) Names() []string {
	var out []string
	for i, n := range routeFlagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseRouteFlag returns the flag for an `ip route` token.
func ParseRouteFlag(s string) (RouteFlags, bool) {
	for i, n := range routeFlagNames {
		if n == s {
			return 1 << i, true
		}
	}
	return 0, false
}

// NextHop is one path of a multipath route (`nexthop via GW dev IF weight W`).
type NextHop struct {
	Gw     netip.Addr
	Dev    string
	Weight int // 1..256; iproute2 prints weight = rtnh_hops+1
	Flags  RouteFlags
}

// Route is one route (netlink.Route in iproute2 vocabulary, with netip).
type Route struct {
	Table TableID
	Type  RouteType
	// Dst is the destination prefix; 0.0.0.0/0 prints as "default".
	Dst netip.Prefix
	// Src is the preferred source address (`src`, RTA_PREFSRC).
	Src netip.Addr
	// Gw is the gateway (`via`); invalid for a directly connected route.
	Gw netip.Addr
	// Dev is the output device's name; empty for blackhole/unreachable/prohibit/throw.
	Dev      string
	Protocol Protocol
	Scope    Scope
	// Metric is the route priority (`metric`); lower wins.
	Metric int
	Flags  RouteFlags
	// MTU and AdvMSS are RTA_METRICS entries (`mtu 1450`, `advmss 1400`), 0 when unset.
	MTU    int
	AdvMSS int
	// MultiPath holds the next hops of an ECMP route (Gw/Dev then unset).
	MultiPath []NextHop
	// Pref is the IPv6 router preference ("medium", "low", "high"); empty for IPv4.
	Pref string
	// Error is the IPv6 `error N` of a reject route (-22 blackhole, -113 unreachable).
	Error int
}

// IsDefault reports whether the destination is 0.0.0.0/0 or ::/0.
func (r *Route) IsDefault() bool { return r.Dst.IsValid() && r.Dst.Bits() == 0 }
