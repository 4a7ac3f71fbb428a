package route

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
)

// Stack is the links, addresses, routes, rules, neighbours and fdb of one namespace.
// The slices keep the kernel's dump order; use the mutators to keep the derived state (the
// kernel's automatic routes, the lookup index) consistent. A Stack is not safe for
// concurrent mutation; concurrent Lookups are safe.
type Stack struct {
	Links  []*Link
	Addrs  []*Addr
	Routes []*Route
	Rules  []*Rule
	Neighs []*Neigh
	FDB    []*FDB
	// TableNames are the names from /etc/iproute2/rt_tables beyond main/local/default
	// (kube-router writes "77 kube-router").
	TableNames map[TableID]string

	idx map[TableID]*tableIndex
}

// ErrExist is returned when an object already exists (EEXIST, "File exists").
var ErrExist = errors.New("file exists")

// ErrNotFound is returned when a device or object does not exist.
var ErrNotFound = errors.New("not found")

// New returns the state of a fresh network namespace: `lo` (index 1, down) and the default
// policy rules 0 local, 32766 main, 32767 default.
func New() *Stack {
	s := &Stack{}
	s.Links = append(s.Links, &Link{Index: 1, Name: "lo", Kind: KindLoopback, Flags: FlagLoopback,
		MTU: 65536, Qdisc: "noop", OperState: OperDown, Group: "default", TxQLen: 1000,
		LinkType: "loopback", HardwareAddr: make(net.HardwareAddr, 6), Broadcast: make(net.HardwareAddr, 6)})
	s.Rules = []*Rule{
		{Priority: 0, Action: ActionLookup, Table: TableLocal},
		{Priority: 32766, Action: ActionLookup, Table: TableMain},
		{Priority: 32767, Action: ActionLookup, Table: TableDefault},
	}
	return s
}

// TableName returns the table's printed name: a TableNames entry, else TableID.String.
func (s *Stack) TableName(t TableID) string {
	if n, ok := s.TableNames[t]; ok {
		return n
	}
	return t.String()
}

// LinkByName returns the link called name, or nil.
func (s *Stack) LinkByName(name string) *Link {
	for _, l := range s.Links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// LinkByIndex returns the link with ifindex i, or nil.
func (s *Stack) LinkByIndex(i int) *Link {
	for _, l := range s.Links {
		if l.Index == i {
			return l
		}
	}
	return nil
}

func (s *Stack) nextIndex() int {
	n := 0
	for _, l := range s.Links {
		n = max(n, l.Index)
	}
	return n + 1
}

// LinkAdd adds a link. A zero Index takes the next free ifindex; empty Qdisc, Group,
// OperState, LinkType, MTU and broadcast address get the kernel's defaults for the kind. An
// Ethernet-type link without an address gets a stable locally administered one derived from
// its name (the kernel picks a random one; output must be deterministic).
// Equivalent to: `ip link add NAME type KIND ...`
func (s *Stack) LinkAdd(l *Link) error {
	if l.Name == "" {
		return errors.New("link add: empty name")
	}
	if len(l.Name) > 15 {
		return fmt.Errorf("link add %q: name longer than 15 bytes (IFNAMSIZ)", l.Name)
	}
	if s.LinkByName(l.Name) != nil {
		return fmt.Errorf("link add %q: %w", l.Name, ErrExist)
	}
	if l.Index == 0 {
		l.Index = s.nextIndex()
	} else if s.LinkByIndex(l.Index) != nil {
		return fmt.Errorf("link add %q: index %d: %w", l.Name, l.Index, ErrExist)
	}
	if l.Kind == "" {
		l.Kind = KindDevice
	}
	if l.Group == "" {
		l.Group = "default"
	}
	if l.Qdisc == "" {
		if l.Up() {
			l.Qdisc = "noqueue"
		} else {
			l.Qdisc = "noop"
		}
	}
	if l.OperState == "" {
		l.OperState = OperDown
		if l.Up() {
			l.OperState = OperUnknown
		}
	}
	if l.LinkType == "" {
		switch l.Kind {
		case KindIPIP:
			l.LinkType = "ipip"
		case KindLoopback:
			l.LinkType = "loopback"
		default:
			l.LinkType = "ether"
		}
	}
	if l.LinkType == "ether" && len(l.HardwareAddr) == 0 {
		l.HardwareAddr = stableMAC(l.Name)
	}
	if l.LinkType == "ether" && len(l.Broadcast) == 0 {
		l.Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	if l.MTU == 0 {
		switch l.Kind {
		case KindIPIP:
			l.MTU = 1480
		case KindVXLAN:
			l.MTU = 1450
		default:
			l.MTU = 1500
		}
	}
	s.Links = append(s.Links, l)
	return nil
}

// LinkSetUp sets a link administratively up, adding the prefix and broadcast routes of its
// addresses as the kernel does on NETDEV_UP (and 127.0.0.1/8 on lo).
// Equivalent to: `ip link set NAME up`
func (s *Stack) LinkSetUp(name string) error {
	l := s.LinkByName(name)
	if l == nil {
		return fmt.Errorf("link set %q up: %w", name, ErrNotFound)
	}
	if l.Up() {
		return nil
	}
	l.Flags |= FlagUp | FlagLowerUp
	if l.Qdisc == "noop" {
		l.Qdisc = "noqueue"
	}
	switch l.Kind {
	case KindLoopback, KindDummy, KindIPIP, KindVXLAN:
		l.OperState = OperUnknown
	default:
		l.OperState = OperUp
	}
	// A veth has carrier only while its peer is up too (a peer in another namespace is
	// taken as up: renderers bring both ends up).
	if l.Kind == KindVeth && l.Veth != nil && !l.Veth.PeerRemote && l.Veth.PeerName != "" {
		if p := s.LinkByName(l.Veth.PeerName); p != nil {
			if !p.Up() {
				l.Flags &^= FlagLowerUp
				l.OperState = OperLowerLayerDown
			} else if p.Flags&FlagLowerUp == 0 {
				p.Flags |= FlagLowerUp
				p.OperState = OperUp
				for _, r := range s.Routes {
					if r.Dev == p.Name {
						r.Flags &^= FlagLinkdown
					}
				}
			}
		}
	}
	if l.Kind == KindLoopback && !slices.ContainsFunc(s.Addrs, func(a *Addr) bool { return a.Dev == name }) {
		return s.AddrAdd(&Addr{Dev: name, Prefix: netip.MustParsePrefix("127.0.0.1/8"), Scope: ScopeHost})
	}
	for _, a := range s.Addrs {
		if a.Dev == name && a.Prefix.Addr().Is4() {
			s.addIfaddrRoutes(a, l, false)
		}
	}
	return nil
}

// LinkSetMaster makes link a port of bridge master.
// Equivalent to: `ip link set NAME master BRIDGE`
func (s *Stack) LinkSetMaster(name, master string) error {
	l, m := s.LinkByName(name), s.LinkByName(master)
	if l == nil || m == nil {
		return fmt.Errorf("link set %q master %q: %w", name, master, ErrNotFound)
	}
	if m.Kind != KindBridge {
		return fmt.Errorf("link set %q master %q: not a bridge", name, master)
	}
	l.Master = master
	if l.BridgePort == nil {
		l.BridgePort = &BridgePort{State: "forwarding", Priority: 32, Cost: 2, Learning: true, Flood: true}
	}
	return nil
}

// AddrAdd adds an address and, as the kernel's fib_add_ifaddr does, the automatic routes:
// `local ADDR` in table local (always), and when the link is up the prefix route
// `PREFIX dev D proto kernel scope link src ADDR` in main (unless the prefix is a /32 of the
// address itself, or the address is secondary), the network broadcast route for prefixes
// shorter than /31 and the explicit `brd` route in table local. On lo the prefix route is a
// `local` route in table local. A second address in an existing primary's subnet becomes
// secondary.
// Equivalent to: `ip addr add PREFIX dev D`
func (s *Stack) AddrAdd(a *Addr) error {
	l := s.LinkByName(a.Dev)
	if l == nil {
		return fmt.Errorf("addr add %s dev %s: cannot find device: %w", a.Prefix, a.Dev, ErrNotFound)
	}
	if !a.Prefix.IsValid() {
		return fmt.Errorf("addr add dev %s: invalid prefix", a.Dev)
	}
	for _, b := range s.Addrs {
		if b.Dev == a.Dev && b.Prefix == a.Prefix {
			return fmt.Errorf("addr add %s dev %s: %w", a.Prefix, a.Dev, ErrExist)
		}
	}
	if a.ValidLft == 0 && a.PreferredLft == 0 {
		a.ValidLft, a.PreferredLft = Forever, Forever
	}
	if a.Prefix.Addr().Is4() {
		if a.Label == "" {
			a.Label = a.Dev
		}
		for _, b := range s.Addrs {
			if b.Dev == a.Dev && b.Prefix.Addr().Is4() && b.Flags&AddrSecondary == 0 &&
				b.Prefix.Bits() == a.Prefix.Bits() && b.Prefix.Masked() == a.Prefix.Masked() {
				a.Flags |= AddrSecondary
				break
			}
		}
	}
	// Kernel order: IPv4 primaries before secondaries of the same device.
	pos := len(s.Addrs)
	if a.Flags&AddrSecondary == 0 && a.Prefix.Addr().Is4() {
		for i, b := range s.Addrs {
			if b.Dev == a.Dev && b.Flags&AddrSecondary != 0 && b.Prefix.Addr().Is4() {
				pos = i
				break
			}
		}
	}
	s.Addrs = slices.Insert(s.Addrs, pos, a)
	if a.Prefix.Addr().Is4() {
		s.addIfaddrRoutes(a, l, true)
	}
	return nil
}

// addIfaddrRoutes mirrors net/ipv4/fib_frontend.c fib_add_ifaddr.
func (s *Stack) addIfaddrRoutes(a *Addr, l *Link, withLocal bool) {
	addr := a.Prefix.Addr()
	prim := addr
	if a.Flags&AddrSecondary != 0 {
		for _, b := range s.Addrs {
			if b.Dev == a.Dev && b.Flags&AddrSecondary == 0 && b.Prefix.Masked() == a.Prefix.Masked() {
				prim = b.Prefix.Addr()
				break
			}
		}
	}
	magic := func(t RouteType, dst netip.Prefix, scope Scope, metric int) {
		r := &Route{Table: TableLocal, Type: t, Dst: dst, Dev: l.Name, Protocol: ProtoKernel, Scope: scope, Src: prim, Metric: metric}
		if t == TypeUnicast {
			r.Table = TableMain
		}
		if l.Up() && l.Flags&FlagLowerUp == 0 && t != TypeLocal {
			r.Flags |= FlagLinkdown
		}
		for _, o := range s.Routes {
			if o.Table == r.Table && o.Dst == r.Dst && o.Metric == r.Metric && o.Type == r.Type {
				return // fib_magic uses NLM_F_CREATE|NLM_F_APPEND semantics; identical kernel routes are not duplicated
			}
		}
		s.insertRoute(r, false)
	}
	if withLocal {
		magic(TypeLocal, netip.PrefixFrom(addr, 32), ScopeHost, 0)
	}
	if !l.Up() {
		return
	}
	if a.Broadcast.IsValid() && a.Broadcast != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		magic(TypeBroadcast, netip.PrefixFrom(a.Broadcast, 32), ScopeLink, 0)
	}
	// The prefix is taken from the peer address when there is one (ifa_address).
	pfx := a.Prefix.Masked()
	if a.Peer.IsValid() {
		pfx = netip.PrefixFrom(a.Peer.Addr(), a.Prefix.Bits()).Masked()
	}
	if !pfx.Addr().IsUnspecified() && a.Flags&AddrSecondary == 0 && (pfx.Addr() != addr || a.Prefix.Bits() < 32) {
		if a.Flags&AddrNoPrefixRoute == 0 {
			if l.Kind == KindLoopback {
				magic(TypeLocal, pfx, ScopeHost, a.Metric)
			} else {
				magic(TypeUnicast, pfx, ScopeLink, a.Metric)
			}
		}
		if a.Prefix.Bits() < 31 {
			magic(TypeBroadcast, netip.PrefixFrom(lastAddr(pfx), 32), ScopeLink, 0)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= (1<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// RouteAdd adds a route, checking what the kernel checks: the device exists, a gateway is
// reachable through a link-scope route on that device unless onlink (fib_check_nh), and no
// route with the same table, destination and metric exists (EEXIST). Zero Table means main,
// empty Type unicast, zero Protocol boot; Scope defaults to link for a directly connected
// unicast route, host for local, universe otherwise, as `ip route add` picks.
// Equivalent to: `ip route add [TYPE] DST [via GW] [dev D] [table T] [proto P] [scope S] [src A] [metric N] [onlink]`
func (s *Stack) RouteAdd(r *Route) error { return s.routeAdd(r, false) }

// RouteAppend adds a route even when one with the same destination and metric exists.
// Equivalent to: `ip route append ...`
func (s *Stack) RouteAppend(r *Route) error { return s.routeAdd(r, true) }

func (s *Stack) routeAdd(r *Route, appendOK bool) error {
	if !r.Dst.IsValid() {
		return errors.New("route add: invalid destination")
	}
	r.Dst = r.Dst.Masked()
	if r.Table == 0 {
		r.Table = TableMain
	}
	if r.Type == "" {
		r.Type = TypeUnicast
	}
	if r.Protocol == 0 {
		r.Protocol = ProtoBoot
	}
	direct := !r.Gw.IsValid() && len(r.MultiPath) == 0
	if r.Scope == 0 && r.Dst.Addr().Is4() {
		switch {
		case r.Type == TypeLocal:
			r.Scope = ScopeHost
		case r.Type == TypeUnicast && direct && r.Dev != "":
			r.Scope = ScopeLink
		case r.Type == TypeBroadcast || r.Type == TypeMulticast || r.Type == TypeAnycast:
			r.Scope = ScopeLink
		}
	}
	what := fmt.Sprintf("route add %s", r.Dst)
	needDev := r.Type == TypeUnicast || r.Type == TypeLocal || r.Type == TypeBroadcast
	hops := r.MultiPath
	if len(hops) == 0 && (r.Dev != "" || r.Gw.IsValid()) {
		hops = []NextHop{{Gw: r.Gw, Dev: r.Dev, Flags: r.Flags}}
	}
	if needDev && len(hops) == 0 {
		return fmt.Errorf("%s: no device or gateway", what)
	}
	for _, h := range hops {
		if h.Dev != "" && s.LinkByName(h.Dev) == nil {
			return fmt.Errorf("%s: cannot find device %q: %w", what, h.Dev, ErrNotFound)
		}
		if h.Gw.IsValid() && h.Flags&FlagOnlink == 0 && r.Flags&FlagOnlink == 0 {
			if err := s.checkGateway(h.Gw, h.Dev, r.Table); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if h.Gw.IsValid() && h.Flags&FlagOnlink != 0 && h.Dev == "" || h.Gw.IsValid() && r.Flags&FlagOnlink != 0 && r.Dev == "" && len(r.MultiPath) == 0 {
			return fmt.Errorf("%s: onlink gateway %s needs a device", what, h.Gw)
		}
	}
	if r.Dev == "" && r.Gw.IsValid() && len(r.MultiPath) == 0 {
		res, err := s.lookupTable(s.tableIndex(r.Table), r.Gw, LookupOptions{})
		if err != nil || res == nil {
			res, _ = s.lookupAll(r.Gw)
		}
		if res != nil {
			r.Dev = res.Dev
		}
	}
	if !appendOK {
		for _, o := range s.Routes {
			if o.Table == r.Table && o.Dst == r.Dst && o.Metric == r.Metric {
				return fmt.Errorf("%s table %s metric %d: %w", what, s.TableName(r.Table), r.Metric, ErrExist)
			}
		}
	}
	s.insertRoute(r, appendOK)
	return nil
}

// checkGateway mirrors fib_check_nh_v4_gw: the gateway must be reached through a route of
// link scope (a connected route) or a local address; with a device given, on that device.
func (s *Stack) checkGateway(gw netip.Addr, dev string, table TableID) error {
	res, err := s.lookupTable(s.tableIndex(table), gw, LookupOptions{})
	if err != nil || res == nil {
		res, err = s.lookupAll(gw)
	}
	if err != nil || res == nil {
		return fmt.Errorf("nexthop has invalid gateway %s: no route to it", gw)
	}
	if res.Route.Scope < ScopeLink || res.Route.Type != TypeUnicast && res.Route.Type != TypeLocal {
		return fmt.Errorf("nexthop has invalid gateway %s: not directly connected (resolved by %s, use onlink)", gw, res.Route.Dst)
	}
	if dev != "" && res.Dev != dev && res.Route.Type != TypeLocal {
		return fmt.Errorf("nexthop has invalid gateway %s: reached via %s, not %s", gw, res.Dev, dev)
	}
	return nil
}

// lookupAll resolves through the main and local tables, as fib_lookup without rules.
func (s *Stack) lookupAll(dst netip.Addr) (*Result, error) {
	if r, err := s.lookupTable(s.tableIndex(TableLocal), dst, LookupOptions{}); r != nil || err != nil {
		return r, err
	}
	return s.lookupTable(s.tableIndex(TableMain), dst, LookupOptions{})
}

// insertRoute places r in s.Routes in the kernel's dump order: tables by (id & 255), then
// the fib trie's key order (address, longer prefix first), then metric; an appended route
// goes after its equals.
func (s *Stack) insertRoute(r *Route, _ bool) {
	pos := len(s.Routes)
	for i, o := range s.Routes {
		if routeLess(r, o) {
			pos = i
			break
		}
	}
	s.Routes = slices.Insert(s.Routes, pos, r)
	s.indexAdd(r)
}

// routeLess orders routes as the kernel dumps them.
func routeLess(a, b *Route) bool {
	if fa, fb := a.Dst.Addr().Is4(), b.Dst.Addr().Is4(); fa != fb {
		return fa
	}
	if ta, tb := a.Table&255, b.Table&255; ta != tb {
		return ta < tb
	}
	if a.Table != b.Table {
		return a.Table > b.Table // newest table first in a hash bucket; approximate by id
	}
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c < 0
	}
	if a.Dst.Bits() != b.Dst.Bits() {
		return a.Dst.Bits() > b.Dst.Bits()
	}
	return a.Metric < b.Metric
}

// RouteDel deletes the first route matching table, destination and (when set) metric,
// device and gateway.
// Equivalent to: `ip route del DST [table T] [dev D] [via GW] [metric N]`
func (s *Stack) RouteDel(r *Route) error {
	t := r.Table
	if t == 0 {
		t = TableMain
	}
	for i, o := range s.Routes {
		if o.Table == t && o.Dst == r.Dst.Masked() && (r.Metric == 0 || o.Metric == r.Metric) &&
			(r.Dev == "" || o.Dev == r.Dev) && (!r.Gw.IsValid() || o.Gw == r.Gw) {
			s.Routes = slices.Delete(s.Routes, i, i+1)
			s.reindex()
			return nil
		}
	}
	return fmt.Errorf("route del %s: no such process: %w", r.Dst, ErrNotFound)
}

// RuleAdd adds a policy rule. A zero Priority on a non-first rule takes, as the kernel does,
// the priority one below the lowest non-zero existing priority (32765 on a fresh stack).
// Rules with equal priority keep insertion order.
// Equivalent to: `ip rule add [not] [from P] [to P] [fwmark M/MASK] [iif I] [oif O] [priority N] lookup T`
func (s *Stack) RuleAdd(r *Rule, autoPriority bool) error {
	if r.Action == "" {
		r.Action = ActionLookup
	}
	if r.Action == ActionLookup && r.Table == 0 {
		return errors.New("rule add: lookup without table")
	}
	if autoPriority {
		p := 0
		for _, o := range s.Rules {
			if o.Priority > 0 && (p == 0 || o.Priority < p) {
				p = o.Priority
			}
		}
		if p > 0 {
			r.Priority = p - 1
		}
	}
	pos := len(s.Rules)
	for i, o := range s.Rules {
		if o.Priority > r.Priority {
			pos = i
			break
		}
	}
	s.Rules = slices.Insert(s.Rules, pos, r)
	return nil
}

// NeighAdd adds a neighbour entry; an entry for the same address and device is replaced.
// Equivalent to: `ip neigh replace IP dev D lladdr MAC nud STATE`
func (s *Stack) NeighAdd(n *Neigh) error {
	if s.LinkByName(n.Dev) == nil {
		return fmt.Errorf("neigh add %s dev %s: %w", n.IP, n.Dev, ErrNotFound)
	}
	if n.State == "" {
		n.State = NeighPermanent
	}
	for i, o := range s.Neighs {
		if o.IP == n.IP && o.Dev == n.Dev {
			s.Neighs[i] = n
			return nil
		}
	}
	s.Neighs = append(s.Neighs, n)
	return nil
}

// FDBAdd adds a bridge fdb entry.
// Equivalent to: `bridge fdb append MAC dev D dst IP self permanent`
func (s *Stack) FDBAdd(f *FDB) error {
	if s.LinkByName(f.Dev) == nil {
		return fmt.Errorf("fdb add %s dev %s: %w", f.MAC, f.Dev, ErrNotFound)
	}
	s.FDB = append(s.FDB, f)
	return nil
}

// Validate checks the references the kernel would enforce: unique link names and indices,
// masters that exist, addresses, routes, neighbours and fdb entries on existing devices.
func (s *Stack) Validate() error {
	var errs []error
	names, idx := map[string]bool{}, map[int]bool{}
	for _, l := range s.Links {
		if names[l.Name] {
			errs = append(errs, fmt.Errorf("duplicate link name %q", l.Name))
		}
		if idx[l.Index] {
			errs = append(errs, fmt.Errorf("duplicate link index %d (%s)", l.Index, l.Name))
		}
		names[l.Name], idx[l.Index] = true, true
	}
	for _, l := range s.Links {
		if l.Master != "" && !names[l.Master] {
			errs = append(errs, fmt.Errorf("link %s: master %q does not exist", l.Name, l.Master))
		}
		if l.VXLAN != nil && l.VXLAN.Dev != "" && !names[l.VXLAN.Dev] {
			errs = append(errs, fmt.Errorf("link %s: vxlan dev %q does not exist", l.Name, l.VXLAN.Dev))
		}
	}
	for _, a := range s.Addrs {
		if !names[a.Dev] {
			errs = append(errs, fmt.Errorf("address %s: device %q does not exist", a.Prefix, a.Dev))
		}
	}
	for _, r := range s.Routes {
		if r.Dev != "" && !names[r.Dev] {
			errs = append(errs, fmt.Errorf("route %s table %s: device %q does not exist", r.Dst, s.TableName(r.Table), r.Dev))
		}
		for _, h := range r.MultiPath {
			if h.Dev != "" && !names[h.Dev] {
				errs = append(errs, fmt.Errorf("route %s nexthop: device %q does not exist", r.Dst, h.Dev))
			}
		}
	}
	for _, n := range s.Neighs {
		if !names[n.Dev] {
			errs = append(errs, fmt.Errorf("neighbour %s: device %q does not exist", n.IP, n.Dev))
		}
	}
	for _, f := range s.FDB {
		if !names[f.Dev] {
			errs = append(errs, fmt.Errorf("fdb %s: device %q does not exist", f.MAC, f.Dev))
		}
	}
	return errors.Join(errs...)
}

// stableMAC derives a locally administered unicast MAC from name (FNV-1a), standing in for
// the kernel's eth_random_addr.
func stableMAC(name string) net.HardwareAddr {
	h := fnv.New64a()
	h.Write([]byte(name))
	v := h.Sum64()
	m := net.HardwareAddr{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	m[0] = m[0]&^0x01 | 0x02
	return m
}
