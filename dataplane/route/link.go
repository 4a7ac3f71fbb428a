package route

import (
	"net"
	"net/netip"
	"strings"
)

// LinkKind is a link's type, spelled as `ip -d link` prints it on the kind line
// (netlink's Link.Type()). KindDevice is a physical (or unknown-kind) device with no kind line.
type LinkKind string

// Link kinds.
const (
	KindDevice   LinkKind = "device"
	KindLoopback LinkKind = "loopback"
	KindVeth     LinkKind = "veth"
	KindBridge   LinkKind = "bridge"
	KindDummy    LinkKind = "dummy"
	KindIPIP     LinkKind = "ipip"
	KindVXLAN    LinkKind = "vxlan"
)

// LinkFlags is the net_device flag set (IFF_*), printed in iproute2 order by Names.
type LinkFlags uint32

// Link flags, in the order iproute2 (ip/ipaddress.c print_link_flags) prints them.
const (
	FlagLoopback LinkFlags = 1 << iota
	FlagBroadcast
	FlagPointToPoint
	FlagMulticast
	FlagNoARP
	FlagAllMulti
	FlagPromisc
	FlagMaster
	FlagSlave
	FlagDebug
	FlagDynamic
	FlagAutomedia
	FlagPortsel
	FlagNotrailers
	FlagUp
	FlagLowerUp
	FlagDormant
	FlagEcho
)

var linkFlagNames = []string{"LOOPBACK", "BROADCAST", "POINTOPOINT", "MULTICAST", "NOARP",
	"ALLMULTI", "PROMISC", "MASTER", "SLAVE", "DEBUG", "DYNAMIC", "AUTOMEDIA", "PORTSEL",
	"NOTRAILERS", "UP", "LOWER_UP", "DORMANT", "ECHO"}

// Names returns the flags as `ip link` prints them inside <...>: NO-CARRIER first when the
// link is UP but not LOWER_UP, then the set flags in iproute2 order.
func (f LinkFlags) Names() []string {
	var out []string
	if f&FlagUp != 0 && f&FlagLowerUp == 0 {
		out = append(out, "NO-CARRIER")
	}
	for i, n := range linkFlagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is the flag list as printed between < and >.
func (f LinkFlags) String() string { return strings.Join(f.Names(), ",") }

// ParseLinkFlag returns the flag for a name inside <...>; NO-CARRIER and M-DOWN parse as 0.
func ParseLinkFlag(s string) (LinkFlags, bool) {
	switch s {
	case "NO-CARRIER", "M-DOWN":
		return 0, true
	}
	for i, n := range linkFlagNames {
		if n == s {
			return 1 << i, true
		}
	}
	return 0, false
}

// OperState is the RFC 2863 operational state (`state UP`).
type OperState string

// Operational states as iproute2 prints them.
const (
	OperUnknown        OperState = "UNKNOWN"
	OperNotPresent     OperState = "NOTPRESENT"
	OperDown           OperState = "DOWN"
	OperLowerLayerDown OperState = "LOWERLAYERDOWN"
	OperTesting        OperState = "TESTING"
	OperDormant        OperState = "DORMANT"
	OperUp             OperState = "UP"
)

// Veth holds a veth's peer. A peer in the same namespace prints as `NAME@PEER`; a peer in
// another namespace prints as `NAME@ifN` and `link-netns NAME` / `link-netnsid N`.
type Veth struct {
	PeerName  string
	PeerIndex int
	// PeerRemote is true when the peer lives in another namespace.
	PeerRemote bool
	// PeerNetNS names the peer's namespace (`link-netns cni-...`); when empty and PeerRemote,
	// PeerNetNSID is printed (`link-netnsid 0`).
	PeerNetNS   string
	PeerNetNSID int
}

// Bridge holds a bridge's main attributes (times in centiseconds, as iproute2 prints them).
type Bridge struct {
	ForwardDelay  int // 1500
	HelloTime     int // 200
	MaxAge        int // 2000
	AgeingTime    int // 30000
	STPState      int
	Priority      int // 32768
	VlanFiltering int
}

// DefaultBridge returns the kernel's defaults for a new bridge.
func DefaultBridge() *Bridge {
	return &Bridge{ForwardDelay: 1500, HelloTime: 200, MaxAge: 2000, AgeingTime: 30000, Priority: 32768}
}

// BridgePort holds a bridge port's attributes (`bridge_slave ...`).
type BridgePort struct {
	State    string // "forwarding", "disabled", "blocking", ...
	Priority int    // 32
	Cost     int    // 2
	Hairpin  bool
	Learning bool
	Flood    bool
}

// IPIP holds an ipip tunnel's parameters; invalid addresses print as "any".
type IPIP struct {
	Local, Remote netip.Addr
	// TTL 0 prints "inherit".
	TTL      int
	PMTUDisc bool
}

// VXLAN holds a vxlan device's parameters.
type VXLAN struct {
	VNI   int
	Local netip.Addr
	// Dev is the underlay device's name.
	Dev      string
	Port     int // dstport; 8472 is the kernel default, 4789 the IANA port
	PortLow  int
	PortHigh int
	Learning bool
	// TTL 0 prints "auto".
	TTL    int
	Ageing int // 300
}

// Details are the attributes only `ip -d link` prints.
type Details struct {
	Promiscuity, Allmulti int
	MinMTU, MaxMTU        int
	AddrGenMode           string // "eui64"
	NumTxQueues           int
	NumRxQueues           int
	GSOMaxSize            int
	GSOMaxSegs            int
	TSOMaxSize            int
	TSOMaxSegs            int
	GROMaxSize            int
	// KindExtra is the rest of the kind line iproute2 prints that the model keeps verbatim
	// (bridge timers and multicast settings, port ids), without leading or trailing space.
	KindExtra string
	// PortExtra likewise for the bridge_slave line.
	PortExtra string
	// TailExtra is what follows gro_max_size on the last detail line (parentbus, parentdev,
	// ...), verbatim.
	TailExtra string
}

// Link is one network device (netlink.Link's LinkAttrs plus the kind-specific parts).
type Link struct {
	Index int
	Name  string
	Kind  LinkKind
	Flags LinkFlags
	MTU   int
	Qdisc string
	// Master is the name of the bridge this link is a port of.
	Master    string
	OperState OperState
	Group     string
	TxQLen    int
	// LinkType is the `link/TYPE` word: "ether", "loopback", "ipip", "none".
	LinkType     string
	HardwareAddr net.HardwareAddr
	Broadcast    net.HardwareAddr
	AltNames     []string
	// Parent is IFLA_LINK for tunnels: ParentNone prints `@NONE`.
	ParentNone bool
	// ParentDown records that the IFLA_LINK device is down (`M-DOWN`) when that device is not
	// in the Stack (a parsed `ip -4 addr` that omits it); otherwise it is computed.
	ParentDown bool

	Veth       *Veth
	Bridge     *Bridge
	BridgePort *BridgePort
	IPIP       *IPIP
	VXLAN      *VXLAN
	Details    *Details
}

// Up reports whether the link is administratively up.
func (l *Link) Up() bool { return l.Flags&FlagUp != 0 }
