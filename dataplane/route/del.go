package route

import (
	"fmt"
	"net/netip"
	"slices"
)

// routeUsesDev reports whether r goes out through dev (directly or as a next hop).
func routeUsesDev(r *Route, dev string) bool {
	if r.Dev == dev {
		return true
	}
	for _, h := range r.MultiPath {
		if h.Dev == dev {
			return true
		}
	}
	return false
}

// LinkSetDown sets a link administratively down as the kernel's NETDEV_DOWN handling does:
// every route through it is flushed except the kernel's `local` routes of its addresses
// (fib_disable_ip keeps nothing else, user routes included), its neighbour entries go (even
// permanent ones, neigh_ifdown), and a same-namespace veth peer loses carrier.
// Equivalent to: `ip link set NAME down`
func (s *Stack) LinkSetDown(name string) error {
	l := s.LinkByName(name)
	if l == nil {
		return fmt.Errorf("link set %q down: %w", name, ErrNotFound)
	}
	if !l.Up() {
		return nil
	}
	l.Flags &^= FlagUp | FlagLowerUp
	l.OperState = OperDown
	s.Routes = slices.DeleteFunc(s.Routes, func(r *Route) bool {
		return routeUsesDev(r, name) && !(r.Type == TypeLocal && r.Table == TableLocal && r.Protocol == ProtoKernel)
	})
	s.Neighs = slices.DeleteFunc(s.Neighs, func(n *Neigh) bool { return n.Dev == name })
	if l.Kind == KindVeth && l.Veth != nil && !l.Veth.PeerRemote {
		if p := s.LinkByName(l.Veth.PeerName); p != nil && p.Up() {
			p.Flags &^= FlagLowerUp
			p.OperState = OperLowerLayerDown
			for _, r := range s.Routes {
				if r.Dev == p.Name && r.Type != TypeLocal {
					r.Flags |= FlagLinkdown
				}
			}
		}
	}
	s.reindex()
	return nil
}

// AddrDel removes an address and, as fib_del_ifaddr does, its kernel routes: its `local`
// route, and for a primary the prefix and broadcast routes (unless another primary of the
// same subnet keeps them). Deleting a primary deletes its secondaries too (the default
// promote_secondaries=0). When the device has no IPv4 address left, every route through it
// is flushed (fib_disable_ip).
// Equivalent to: `ip addr del PREFIX dev D`
func (s *Stack) AddrDel(dev string, prefix netip.Prefix) error {
	i := slices.IndexFunc(s.Addrs, func(a *Addr) bool { return a.Dev == dev && a.Prefix == prefix })
	if i < 0 {
		return fmt.Errorf("addr del %s dev %s: cannot assign requested address: %w", prefix, dev, ErrNotFound)
	}
	a := s.Addrs[i]
	gone := []*Addr{a}
	if a.Prefix.Addr().Is4() && a.Flags&AddrSecondary == 0 {
		for _, b := range s.Addrs {
			if b != a && b.Dev == dev && b.Flags&AddrSecondary != 0 && b.Prefix.Masked() == a.Prefix.Masked() {
				gone = append(gone, b)
			}
		}
	}
	s.Addrs = slices.DeleteFunc(s.Addrs, func(b *Addr) bool { return slices.Contains(gone, b) })
	if !a.Prefix.Addr().Is4() {
		return nil
	}
	isKernel := func(r *Route) bool { return r.Protocol == ProtoKernel && r.Dev == dev }
	for _, g := range gone {
		addr := g.Prefix.Addr()
		pfx := g.Prefix.Masked()
		if g.Peer.IsValid() {
			pfx = g.Peer.Masked()
		}
		stillUsed := func(p func(*Addr) bool) bool { return slices.ContainsFunc(s.Addrs, p) }
		s.Routes = slices.DeleteFunc(s.Routes, func(r *Route) bool {
			if !isKernel(r) {
				return false
			}
			switch {
			case r.Type == TypeLocal && r.Dst.Addr() == addr && r.Dst.Bits() == 32:
				return !stillUsed(func(b *Addr) bool { return b.Prefix.Addr() == addr })
			case g.Flags&AddrSecondary == 0 && r.Dst == pfx && (r.Type == TypeUnicast || r.Type == TypeLocal):
				return !stillUsed(func(b *Addr) bool { return b.Dev == dev && b.Flags&AddrSecondary == 0 && b.Prefix.Masked() == pfx })
			case g.Flags&AddrSecondary == 0 && r.Type == TypeBroadcast && (r.Dst.Addr() == g.Broadcast || pfx.Bits() < 31 && r.Dst.Addr() == lastAddr(pfx)):
				return !stillUsed(func(b *Addr) bool {
					return b.Dev == dev && b.Prefix.Addr().Is4() && (b.Broadcast == r.Dst.Addr() || b.Prefix.Bits() < 31 && lastAddr(b.Prefix.Masked()) == r.Dst.Addr())
				})
			}
			return false
		})
	}
	if !slices.ContainsFunc(s.Addrs, func(b *Addr) bool { return b.Dev == dev && b.Prefix.Addr().Is4() }) {
		s.Routes = slices.DeleteFunc(s.Routes, func(r *Route) bool { return routeUsesDev(r, dev) && r.Dst.Addr().Is4() })
	}
	s.reindex()
	return nil
}

// LinkDel deletes a link with its addresses, routes, neighbours and fdb entries; deleting
// one end of a same-namespace veth pair deletes the other; ports of a deleted bridge lose
// their master.
// Equivalent to: `ip link del NAME`
func (s *Stack) LinkDel(name string) error {
	l := s.LinkByName(name)
	if l == nil {
		return fmt.Errorf("link del %q: cannot find device: %w", name, ErrNotFound)
	}
	names := []string{name}
	if l.Kind == KindVeth && l.Veth != nil && !l.Veth.PeerRemote && s.LinkByName(l.Veth.PeerName) != nil {
		names = append(names, l.Veth.PeerName)
	}
	in := func(n string) bool { return slices.Contains(names, n) }
	s.Links = slices.DeleteFunc(s.Links, func(x *Link) bool { return in(x.Name) })
	for _, x := range s.Links {
		if in(x.Master) {
			x.Master, x.BridgePort = "", nil
		}
	}
	s.Addrs = slices.DeleteFunc(s.Addrs, func(a *Addr) bool { return in(a.Dev) })
	s.Routes = slices.DeleteFunc(s.Routes, func(r *Route) bool {
		return slices.ContainsFunc(names, func(n string) bool { return routeUsesDev(r, n) })
	})
	s.Neighs = slices.DeleteFunc(s.Neighs, func(n *Neigh) bool { return in(n.Dev) })
	s.FDB = slices.DeleteFunc(s.FDB, func(f *FDB) bool { return in(f.Dev) })
	s.reindex()
	return nil
}

// RuleDel deletes the first rule with r's priority, selector and table.
// Equivalent to: `ip rule del priority N ...`
func (s *Stack) RuleDel(r *Rule) error {
	i := slices.IndexFunc(s.Rules, func(o *Rule) bool {
		return o.Priority == r.Priority && o.Not == r.Not && o.Src == r.Src && o.Dst == r.Dst &&
			o.HasMark == r.HasMark && o.Mark == r.Mark && o.Mask == r.Mask && o.IIF == r.IIF && o.OIF == r.OIF &&
			(r.Table == 0 || o.Table == r.Table)
	})
	if i < 0 {
		return fmt.Errorf("rule del priority %d: %w", r.Priority, ErrNotFound)
	}
	s.Rules = slices.Delete(s.Rules, i, i+1)
	return nil
}

// NeighDel deletes the neighbour entry for ip on dev.
// Equivalent to: `ip neigh del IP dev D`
func (s *Stack) NeighDel(n *Neigh) error {
	i := slices.IndexFunc(s.Neighs, func(o *Neigh) bool { return o.IP == n.IP && o.Dev == n.Dev })
	if i < 0 {
		return fmt.Errorf("neigh del %s dev %s: %w", n.IP, n.Dev, ErrNotFound)
	}
	s.Neighs = slices.Delete(s.Neighs, i, i+1)
	return nil
}
