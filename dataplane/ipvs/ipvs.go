// Package ipvs models the Linux IP Virtual Server as Linux 6.x keeps it
// (net/netfilter/ipvs/ip_vs_ctl.c, ip_vs_core.c, ip_vs_conn.c and every ip_vs_*.c
// scheduler): virtual services (TCP, UDP, SCTP by address and port, or by firewall mark),
// their flags and persistence, real servers with forwarding method, weight, thresholds,
// connection counters and statistics, the connection table with persistence templates,
// and every scheduler the kernel ships (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq,
// fo, ovf, mh, twos), each re-implemented from the kernel's algorithm so that the same
// sequence of connections picks the same real servers the kernel picks.
//
// Two kernel details shape everything here and are easy to get wrong:
//
//   - The kernel keeps a service's real servers in a list and adds new ones at the head
//     (list_add_rcu in __ip_vs_update_dest), so Service.Dests is in kernel list order:
//     the most recently added real server first. Schedulers iterate in that order.
//   - ipvsadm sorts what it prints; the model keeps the kernel order and the printer
//     (format/ipvsadm) sorts.
//
// The package is portable: nothing here touches the operating system.
package ipvs

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Protocol is a virtual service's transport protocol; the values are knet's CLI tokens.
type Protocol string

// Protocols IPVS balances.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Number returns the IP protocol number (IPPROTO_*).
func (p Protocol) Number() int {
	switch p {
	case TCP:
		return 6
	case UDP:
		return 17
	case SCTP:
		return 132
	}
	return 0
}

// Label returns the protocol as ipvsadm prints it ("TCP", "UDP", "SCTP").
func (p Protocol) Label() string { return strings.ToUpper(string(p)) }

// ParseProtocol parses "tcp", "udp" or "sctp" in any case.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(s)); p {
	case TCP, UDP, SCTP:
		return p, nil
	}
	return "", fmt.Errorf("unknown ipvs protocol %q (want tcp, udp or sctp)", s)
}

// Scheduler names a kernel scheduling module (ip_vs_<name>.ko); the values are the names
// ipvsadm -s takes and prints.
type Scheduler string

// Every scheduler Linux 6.x ships.
const (
	RoundRobin                Scheduler = "rr"
	WeightedRoundRobin        Scheduler = "wrr"
	LeastConnection           Scheduler = "lc"
	WeightedLeastConnection   Scheduler = "wlc"
	LocalityLeastConnection   Scheduler = "lblc"
	LocalityLeastConnectionRp Scheduler = "lblcr"
	DestinationHashing        Scheduler = "dh"
	SourceHashing             Scheduler = "sh"
	ShortestExpectedDelay     Scheduler = "sed"
	NeverQueue                Scheduler = "nq"
	WeightedFailover          Scheduler = "fo"
	WeightedOverflow          Scheduler = "ovf"
	MaglevHashing             Scheduler = "mh"
	PowerOfTwoChoices         Scheduler = "twos"
)

// Schedulers lists every scheduler in the order the kernel's Kconfig lists them.
func Schedulers() []Scheduler {
	return []Scheduler{RoundRobin, WeightedRoundRobin, LeastConnection, WeightedLeastConnection,
		LocalityLeastConnection, LocalityLeastConnectionRp, DestinationHashing, SourceHashing,
		ShortestExpectedDelay, NeverQueue, WeightedFailover, WeightedOverflow, MaglevHashing,
		PowerOfTwoChoices}
}

// ParseScheduler checks that s names a kernel scheduler.
func ParseScheduler(s string) (Scheduler, error) {
	for _, k := range Schedulers() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown ipvs scheduler %q", s)
}

// Deterministic reports whether the scheduler's choice is a function of the service state
// and the packet (every scheduler but twos, which draws random numbers).
func (s Scheduler) Deterministic() bool { return s != PowerOfTwoChoices }

// Flags are a virtual service's flags (IP_VS_SVC_F_*, include/uapi/linux/ip_vs.h).
type Flags uint32

// Service flags with the kernel's values.
const (
	FlagPersistent Flags = 0x0001 // IP_VS_SVC_F_PERSISTENT: persistent port
	FlagHashed     Flags = 0x0002 // IP_VS_SVC_F_HASHED: kernel-internal, hashed entry
	FlagOnePacket  Flags = 0x0004 // IP_VS_SVC_F_ONEPACKET: one-packet scheduling (ops)
	FlagSched1     Flags = 0x0008 // IP_VS_SVC_F_SCHED1: scheduler flag 1
	FlagSched2     Flags = 0x0010 // IP_VS_SVC_F_SCHED2: scheduler flag 2
	FlagSched3     Flags = 0x0020 // IP_VS_SVC_F_SCHED3: scheduler flag 3

	FlagSHFallback = FlagSched1 // sh: pick another server when the hashed one is unavailable
	FlagSHPort     = FlagSched2 // sh: hash the source port too
	FlagMHFallback = FlagSched1 // mh: pick another server when the hashed one is unavailable
	FlagMHPort     = FlagSched2 // mh: hash the source port too
)

// Forward is a real server's packet-forwarding method (IP_VS_CONN_F_FWD_MASK); the values
// are knet's CLI tokens; Label gives ipvsadm's spelling.
type Forward string

// Forwarding methods.
const (
	Masq   Forward = "masq"   // NAT (ipvsadm -m)
	Local  Forward = "local"  // local node (ipvsadm shows Local, saves -g)
	Route  Forward = "route"  // direct routing (ipvsadm -g)
	Tunnel Forward = "tunnel" // IP-IP tunnelling (ipvsadm -i)
)

// Label returns the method as `ipvsadm -L` prints it (Masq, Local, Route, Tunnel).
func (f Forward) Label() string {
	switch f {
	case Masq:
		return "Masq"
	case Local:
		return "Local"
	case Route:
		return "Route"
	case Tunnel:
		return "Tunnel"
	}
	return string(f)
}

// Stats are the counters and rate estimates ipvsadm --stats / --rate print
// (struct ip_vs_kstats / ip_vs_stats_user).
type Stats struct {
	Conns, InPkts, OutPkts, InBytes, OutBytes uint64
	CPS, InPPS, OutPPS, InBPS, OutBPS         uint64
}

// Dest is a real server of a virtual service (struct ip_vs_dest).
type Dest struct {
	Addr    netip.Addr
	Port    uint16
	Forward Forward
	// Weight is the current weight; 0 quiesces the server (no new connections).
	Weight int
	// LastWeight is the last non-zero weight (the mh scheduler keeps table slots for
	// quiesced servers with it).
	LastWeight int
	// UpperThreshold and LowerThreshold bound active+inactive connections (0: no limit):
	// above the upper the server is marked overloaded until it falls below the lower.
	UpperThreshold, LowerThreshold        uint32
	ActiveConns, InactConns, PersistConns uint32
	// Overloaded mirrors IP_VS_DEST_F_OVERLOAD.
	Overloaded bool
	Stats      Stats

	gone bool // removed from its service (IP_VS_DEST_F_AVAILABLE cleared)
}

// AddrPort returns the real server's address and port.
func (d *Dest) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }

// overhead is ip_vs_dest_conn_overhead: (activeconns << 8) + inactconns.
func (d *Dest) overhead() int64 { return int64(d.ActiveConns)<<8 + int64(d.InactConns) }

// bound applies ip_vs_bind_dest's threshold rule after a connection was counted.
func (d *Dest) bound() {
	if d.UpperThreshold != 0 && d.ActiveConns+d.InactConns >= d.UpperThreshold {
		d.Overloaded = true
	}
}

// unbound applies ip_vs_unbind_dest's threshold rule after a connection left.
func (d *Dest) unbound() {
	total := d.ActiveConns + d.InactConns
	switch {
	case d.LowerThreshold != 0:
		if total < d.LowerThreshold {
			d.Overloaded = false
		}
	case d.UpperThreshold != 0:
		if total*4 < d.UpperThreshold*3 {
			d.Overloaded = false
		}
	default:
		d.Overloaded = false
	}
}

// available is what most schedulers test: not overloaded and weight > 0.
func (d *Dest) available() bool { return !d.Overloaded && d.Weight > 0 }

// Service is a virtual service (struct ip_vs_service).
type Service struct {
	// Protocol, Addr and Port identify an address service; FWMark (non-zero) a firewall
	// mark service, which then has no address (Family says inet or inet6).
	Protocol Protocol
	Addr     netip.Addr
	Port     uint16
	FWMark   uint32
	// Family is 4 or 6 (needed for fwmark services; derived from Addr otherwise).
	Family int

	Scheduler Scheduler
	Flags     Flags
	// Timeout is the persistence timeout in seconds (with FlagPersistent).
	Timeout uint32
	// NetmaskBits is the persistence granularity as a prefix length (32 / 128 by default).
	NetmaskBits int
	// PEName is the persistence engine ("sip"), empty for none.
	PEName string

	// Dests are the real servers in kernel list order (most recently added first).
	Dests []*Dest
	Stats Stats

	sched schedState
}

// IsFWMark reports whether the service is keyed by firewall mark.
func (s *Service) IsFWMark() bool { return s.FWMark != 0 }

// Is6 reports whether the service is IPv6.
func (s *Service) Is6() bool {
	if s.IsFWMark() {
		return s.Family == 6
	}
	return s.Addr.Is6() && !s.Addr.Is4In6()
}

// String names the service as ipvsadm's rule syntax does: "tcp 10.96.0.1:443" or
// "fwmark 5".
func (s *Service) String() string {
	if s.IsFWMark() {
		return fmt.Sprintf("fwmark %d", s.FWMark)
	}
	return fmt.Sprintf("%s %s", s.Protocol, netip.AddrPortFrom(s.Addr, s.Port))
}

// Dest returns the real server at addr:port, or nil.
func (s *Service) Dest(addr netip.Addr, port uint16) *Dest {
	for _, d := range s.Dests {
		if d.Addr == addr && d.Port == port {
			return d
		}
	}
	return nil
}

// Timeouts are the IPVS protocol timeouts (`ipvsadm --set tcp tcpfin udp`).
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// DefaultTimeouts are the kernel's defaults: tcp 900 s, tcpfin 120 s, udp 300 s.
func DefaultTimeouts() Timeouts {
	return Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}
}

// Sysctls are the net.ipv4.vs sysctls that change scheduling and expiry.
type Sysctls struct {
	// ExpireNodestConn drops connections whose real server was removed (kube-proxy sets 1).
	ExpireNodestConn bool
	// ExpireQuiescentTemplate drops persistence templates whose server has weight 0
	// (kube-proxy sets 1).
	ExpireQuiescentTemplate bool
	// LBLCExpiration and LBLCRExpiration are lblc_expiration / lblcr_expiration
	// (default 24 h).
	LBLCExpiration, LBLCRExpiration time.Duration
}

// State is the IPVS state of one namespace (what `ipvsadm -Ln` and `-Lnc` print).
type State struct {
	// Version is the IPVS version the kernel reports ("1.2.1" on every Linux since 2.6).
	Version string
	// ConnTabSize is the connection hash table size (default 4096, ip_vs_conn_tab_bits 12).
	ConnTabSize int

	// Services are the virtual services in creation order.
	Services []*Service

	Timeouts Timeouts
	Sysctls  Sysctls

	// Conns is the connection table (connections and persistence templates).
	Conns *ConnTable

	// Rand draws the random numbers the twos scheduler needs; nil uses a fixed-seed
	// generator (the kernel uses get_random_u32_below, which no model can predict).
	Rand RandSource

	svcIndex map[svcKey]*Service
}

type svcKey struct {
	fwmark uint32
	family int
	proto  Protocol
	addr   netip.Addr
	port   uint16
}

func (s *Service) key() svcKey {
	if s.IsFWMark() {
		return svcKey{fwmark: s.FWMark, family: s.famOrDefault()}
	}
	return svcKey{proto: s.Protocol, addr: s.Addr, port: s.Port}
}

func (s *Service) famOrDefault() int {
	if s.Family == 0 {
		return 4
	}
	return s.Family
}

// New returns an empty IPVS state with the kernel's defaults.
func New() *State {
	return &State{
		Version:     "1.2.1",
		ConnTabSize: 4096,
		Timeouts:    DefaultTimeouts(),
		Sysctls: Sysctls{
			LBLCExpiration:  24 * time.Hour,
			LBLCRExpiration: 24 * time.Hour,
		},
		Conns:    newConnTable(),
		svcIndex: map[svcKey]*Service{},
	}
}

func (st *State) ensure() {
	if st.svcIndex == nil {
		st.svcIndex = make(map[svcKey]*Service, len(st.Services))
		for _, s := range st.Services {
			st.svcIndex[s.key()] = s
		}
	}
	if st.Conns == nil {
		st.Conns = newConnTable()
	}
	if st.Version == "" {
		st.Version = "1.2.1"
	}
	if st.ConnTabSize == 0 {
		st.ConnTabSize = 4096
	}
	if st.Timeouts == (Timeouts{}) {
		st.Timeouts = DefaultTimeouts()
	}
}

// AddService adds a virtual service and initialises its scheduler.
// Equivalent to: `ipvsadm -A -t ADDR:PORT -s SCHED [-p TIMEOUT] [-b FLAGS]`.
func (st *State) AddService(s *Service) error {
	st.ensure()
	if s.IsFWMark() {
		if s.Family == 0 {
			s.Family = 4
		}
	} else {
		if !s.Addr.IsValid() {
			return fmt.Errorf("ipvs service: missing virtual address")
		}
		if s.Protocol.Number() == 0 {
			return fmt.Errorf("ipvs service %s: unknown protocol %q", s.Addr, s.Protocol)
		}
		if s.Addr.Is4() {
			s.Family = 4
		} else {
			s.Family = 6
		}
	}
	if s.Scheduler == "" {
		s.Scheduler = WeightedLeastConnection // ipvsadm's DEF_SCHED
	}
	if _, err := ParseScheduler(string(s.Scheduler)); err != nil {
		return fmt.Errorf("ipvs service %s: %w", s, err)
	}
	if s.NetmaskBits == 0 {
		if s.Family == 6 {
			s.NetmaskBits = 128
		} else {
			s.NetmaskBits = 32
		}
	}
	if s.Flags&FlagPersistent != 0 && s.Timeout == 0 {
		s.Timeout = 300 // ipvsadm's DEF_PERSISTENT_TIMEOUT... set by -p without value
	}
	k := s.key()
	if _, dup := st.svcIndex[k]; dup {
		return fmt.Errorf("ipvs service %s: already exists", s)
	}
	st.svcIndex[k] = s
	st.Services = append(st.Services, s)
	for _, d := range s.Dests {
		if d.LastWeight == 0 {
			d.LastWeight = d.Weight
		}
	}
	s.sched = newSchedState(s)
	return nil
}

// DelService removes a virtual service and its connections.
// Equivalent to: `ipvsadm -D -t ADDR:PORT`.
func (st *State) DelService(s *Service) {
	st.ensure()
	delete(st.svcIndex, s.key())
	for i, x := range st.Services {
		if x == s {
			st.Services = append(st.Services[:i], st.Services[i+1:]...)
			break
		}
	}
	st.Conns.dropService(s)
}

// Service returns the address service proto addr:port, or nil.
func (st *State) Service(proto Protocol, addr netip.Addr, port uint16) *Service {
	st.ensure()
	return st.svcIndex[svcKey{proto: proto, addr: addr, port: port}]
}

// Lookup finds the virtual service a packet to addr:port (with firewall mark fwmark)
// belongs to, as ip_vs_service_find does: a firewall-mark service first, then the exact
// address service, then a port-zero (all ports) service on the same address.
func (st *State) Lookup(proto Protocol, addr netip.Addr, port uint16, fwmark uint32) *Service {
	st.ensure()
	if fwmark != 0 {
		fam := 4
		if addr.Is6() && !addr.Is4In6() {
			fam = 6
		}
		if s := st.svcIndex[svcKey{fwmark: fwmark, family: fam}]; s != nil {
			return s
		}
	}
	if s := st.svcIndex[svcKey{proto: proto, addr: addr, port: port}]; s != nil {
		return s
	}
	if port != 0 {
		if s := st.svcIndex[svcKey{proto: proto, addr: addr, port: 0}]; s != nil {
			return s
		}
	}
	return nil
}

// AddDest adds a real server to a service at the head of its list, as the kernel does,
// and tells the scheduler.
// Equivalent to: `ipvsadm -a -t VADDR:VPORT -r ADDR:PORT -m -w WEIGHT`.
func (st *State) AddDest(s *Service, d *Dest) error {
	if s.Dest(d.Addr, d.Port) != nil {
		return fmt.Errorf("ipvs service %s: real server %s already exists", s, d.AddrPort())
	}
	if d.Weight < 0 {
		return fmt.Errorf("ipvs service %s: real server %s: negative weight %d", s, d.AddrPort(), d.Weight)
	}
	if d.Forward == "" {
		d.Forward = Masq
	}
	if d.Weight > 0 {
		d.LastWeight = d.Weight
	}
	s.Dests = append([]*Dest{d}, s.Dests...)
	if s.sched == nil {
		s.sched = newSchedState(s)
	} else {
		s.sched.added(s, d)
	}
	return nil
}

// EditDest changes a real server's weight and thresholds (weight 0 quiesces it).
// Equivalent to: `ipvsadm -e -t VADDR:VPORT -r ADDR:PORT -w WEIGHT`.
func (st *State) EditDest(s *Service, d *Dest, weight int, upper, lower uint32) error {
	if weight < 0 {
		return fmt.Errorf("ipvs service %s: real server %s: negative weight %d", s, d.AddrPort(), weight)
	}
	d.Weight = weight
	if weight > 0 {
		d.LastWeight = weight
	}
	d.UpperThreshold, d.LowerThreshold = upper, lower
	// __ip_vs_update_dest: raising the upper threshold clears the overload mark.
	if upper == 0 || d.ActiveConns+d.InactConns < upper {
		d.Overloaded = false
	}
	if s.sched != nil {
		s.sched.updated(s, d)
	}
	return nil
}

// DelDest removes a real server; its connections stay (or are expired at once when
// Sysctls.ExpireNodestConn is set, on their next packet).
// Equivalent to: `ipvsadm -d -t VADDR:VPORT -r ADDR:PORT`.
func (st *State) DelDest(s *Service, d *Dest) error {
	idx := -1
	for i, x := range s.Dests {
		if x == d {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("ipvs service %s: no real server %s", s, d.AddrPort())
	}
	if s.sched != nil {
		s.sched.removing(s, idx)
	}
	s.Dests = append(s.Dests[:idx:idx], s.Dests[idx+1:]...)
	d.gone = true
	if s.sched != nil {
		s.sched.removed(s, d)
	}
	if st.Sysctls.ExpireNodestConn {
		st.ensure()
		st.Conns.dropDest(d)
	}
	return nil
}
