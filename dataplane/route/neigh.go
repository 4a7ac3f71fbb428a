package route

import (
	"net"
	"net/netip"
)

// NeighState is a neighbour state (NUD_*), printed upper-case by `ip neigh`.
type NeighState string

// Neighbour states.
const (
	NeighIncomplete NeighState = "INCOMPLETE"
	NeighReachable  NeighState = "REACHABLE"
	NeighStale      NeighState = "STALE"
	NeighDelay      NeighState = "DELAY"
	NeighProbe      NeighState = "PROBE"
	NeighFailed     NeighState = "FAILED"
	NeighNoARP      NeighState = "NOARP"
	NeighPermanent  NeighState = "PERMANENT"
	NeighNone       NeighState = "NONE"
)

// Neigh is one neighbour (ARP/NDP) entry.
type Neigh struct {
	IP     netip.Addr
	Dev    string
	LLAddr net.HardwareAddr
	State  NeighState
	// Router, Proxy and ExternLearn are NTF_ROUTER, NTF_PROXY and NTF_EXT_LEARNED.
	Router, Proxy, ExternLearn bool
}

// FDBState is a bridge fdb entry's state word.
type FDBState string

// FDB states as `bridge fdb` prints them ("" for a learned, reachable entry).
const (
	FDBLearned   FDBState = ""
	FDBPermanent FDBState = "permanent"
	FDBStatic    FDBState = "static"
	FDBStale     FDBState = "stale"
)

// FDB is one bridge forwarding database entry (`bridge fdb show`).
type FDB struct {
	MAC net.HardwareAddr
	Dev string
	// VLAN is the vlan id, 0 when none.
	VLAN int
	// Dst is the remote VTEP of a vxlan entry, invalid when none.
	Dst netip.Addr
	// Self marks an entry in the device's own table (NTF_SELF); Master names the bridge.
	Self        bool
	Master      string
	ExternLearn bool
	State       FDBState
}
