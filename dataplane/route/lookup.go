package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// tableIndex is one table's routes by prefix length, for longest-prefix match in at most
// one map probe per prefix length present.
type tableIndex struct {
	// v4 holds IPv4 routes by prefix length, keyed by the masked address as a uint32.
	v4    [33]map[uint32][]*Route
	byLen map[int]map[netip.Prefix][]*Route
	lens4 []int // descending
	lens6 []int
}

func (s *Stack) tableIndex(t TableID) *tableIndex {
	if s.idx == nil {
		return nil
	}
	return s.idx[t]
}

func (s *Stack) indexAdd(r *Route) {
	if s.idx == nil {
		s.idx = map[TableID]*tableIndex{}
	}
	ti := s.idx[r.Table]
	if ti == nil {
		ti = &tableIndex{byLen: map[int]map[netip.Prefix][]*Route{}}
		s.idx[r.Table] = ti
	}
	if r.Dst.Addr().Is4() {
		l := r.Dst.Bits()
		if ti.v4[l] == nil {
			ti.v4[l] = map[uint32][]*Route{}
			ti.lens4 = insertDesc(ti.lens4, l)
		}
		k := v4key(r.Dst.Addr(), l)
		ti.v4[l][k] = insertByMetric(ti.v4[l][k], r)
		return
	}
	key := r.Dst.Bits() + 1000
	m := ti.byLen[key]
	if m == nil {
		m = map[netip.Prefix][]*Route{}
		ti.byLen[key] = m
		if r.Dst.Addr().Is4() {
			ti.lens4 = insertDesc(ti.lens4, r.Dst.Bits())
		} else {
			ti.lens6 = insertDesc(ti.lens6, r.Dst.Bits())
		}
	}
	m[r.Dst] = insertByMetric(m[r.Dst], r)
}

// insertByMetric keeps rs stable by metric: r goes after every route with metric <= its own.
func insertByMetric(rs []*Route, r *Route) []*Route {
	pos := len(rs)
	for i, o := range rs {
		if o.Metric > r.Metric {
			pos = i
			break
		}
	}
	return slices.Insert(rs, pos, r)
}

func v4key(a netip.Addr, bits int) uint32 {
	b := a.As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if bits == 0 {
		return 0
	}
	return n &^ (1<<(32-bits) - 1)
}

func insertDesc(l []int, v int) []int {
	i, _ := slices.BinarySearchFunc(l, v, func(a, b int) int { return b - a })
	return slices.Insert(l, i, v)
}

// reindex rebuilds the lookup index from s.Routes (after deletions or direct edits).
func (s *Stack) reindex() {
	s.idx = nil
	for _, r := range s.Routes {
		s.indexAdd(r)
	}
}

// Reindex rebuilds the lookup index; call it after editing s.Routes directly (parsers do).
func (s *Stack) Reindex() { s.reindex() }

// LookupOptions are the flow keys besides the destination.
type LookupOptions struct {
	// Src is the packet's source address (rule `from` selector); invalid for locally
	// generated traffic that has not chosen one yet.
	Src netip.Addr
	// IIF is the input device (forwarded traffic), OIF a bound output device.
	IIF, OIF string
	// Mark is the packet's fwmark.
	Mark uint32
}

// ErrorKind is why a lookup failed.
type ErrorKind string

// Lookup failures, named by the errno the kernel returns.
const (
	ErrNetUnreachable  ErrorKind = "ENETUNREACH" // no route, or an unreachable route/rule (EHOSTUNREACH)
	ErrHostUnreachable ErrorKind = "EHOSTUNREACH"
	ErrProhibited      ErrorKind = "EACCES" // prohibit route or rule
	ErrBlackholed      ErrorKind = "EINVAL" // blackhole rule
)

// LookupError is a failed FIB lookup.
type LookupError struct {
	Dst  netip.Addr
	Kind ErrorKind
	// Route is the reject route that matched, nil when nothing matched.
	Route *Route
	// Rule is the rule that decided, nil when the tables ran out.
	Rule *Rule
}

func (e *LookupError) Error() string {
	switch {
	case e.Route != nil:
		return fmt.Sprintf("route to %s: %s route %s (%s)", e.Dst, e.Route.Type, e.Route.Dst, e.Kind)
	case e.Rule != nil:
		return fmt.Sprintf("route to %s: rule %d %s (%s)", e.Dst, e.Rule.Priority, e.Rule.Action, e.Kind)
	}
	return fmt.Sprintf("route to %s: network is unreachable (%s)", e.Dst, e.Kind)
}

// Result is the outcome of a FIB lookup.
type Result struct {
	// Route is the matched route; Table the table it is in; Rule the rule that led there.
	Route *Route
	Table TableID
	Rule  *Rule
	// Type is the route's type: unicast (forward), local (deliver here), broadcast, or
	// blackhole (drop silently).
	Type RouteType
	// Dev is the output device ("lo" for local delivery, as the kernel reports it).
	Dev string
	// Gateway is the next hop; invalid when the destination is directly connected.
	Gateway netip.Addr
	// Src is the preferred source address (route src, else inet_select_addr).
	Src netip.Addr
	// Onlink is set when the gateway is taken as on-link without resolution.
	Onlink bool
	// NextHops are all paths of a multipath route; Dev/Gateway are the first. The kernel
	// picks one per flow by hashing it with a per-boot key (fib_select_multipath), so which
	// one a given flow takes cannot be predicted; each is taken with probability
	// weight/sum(weights).
	NextHops []NextHop
}

// Direct reports whether the destination is on-link (no gateway).
func (r *Result) Direct() bool { return !r.Gateway.IsValid() }

// Lookup resolves dst as the kernel's fib_lookup + ip_route_output do: policy rules in
// priority order (selectors from/to/fwmark/iif/oif, `not`), the rule's table by longest
// prefix match then lowest metric then insertion order, honouring an OIF binding; `throw`
// routes and empty tables continue with the next rule; blackhole yields a Result of Type
// blackhole; unreachable and prohibit routes or rules return a *LookupError. For a multipath
// route Dev/Gateway are the first next hop and Result.NextHops lists them all (the kernel
// hashes the flow with a per-boot key to choose).
// Equivalent to: `ip route get DST [from SRC] [iif I] [oif O] [mark M]`
func (s *Stack) Lookup(dst netip.Addr, o LookupOptions) (*Result, error) {
	if !dst.IsValid() {
		return nil, errors.New("route lookup: invalid destination")
	}
	dst = dst.Unmap()
	for i := 0; i < len(s.Rules); i++ {
		rule := s.Rules[i]
		if !ruleMatches(rule, dst, o) {
			continue
		}
		switch rule.Action {
		case ActionNop:
			continue
		case ActionGoto:
			j := slices.IndexFunc(s.Rules, func(r *Rule) bool { return r.Priority >= rule.Goto })
			if j < 0 || j <= i {
				continue
			}
			i = j - 1
			continue
		case ActionBlackhole:
			return nil, &LookupError{Dst: dst, Kind: ErrBlackholed, Rule: rule}
		case ActionUnreachable:
			return nil, &LookupError{Dst: dst, Kind: ErrHostUnreachable, Rule: rule}
		case ActionProhibit:
			return nil, &LookupError{Dst: dst, Kind: ErrProhibited, Rule: rule}
		}
		res, err := s.lookupTable(s.tableIndex(rule.Table), dst, o)
		if err != nil {
			var le *LookupError
			if errors.As(err, &le) {
				le.Rule = rule
			}
			return nil, err
		}
		if res == nil { // no match or throw: next rule
			continue
		}
		res.Rule = rule
		return res, nil
	}
	return nil, &LookupError{Dst: dst, Kind: ErrNetUnreachable}
}

func ruleMatches(r *Rule, dst netip.Addr, o LookupOptions) bool {
	m := true
	if r.Src.IsValid() && (!o.Src.IsValid() || !r.Src.Contains(o.Src.Unmap())) {
		m = false
	}
	if m && r.Dst.IsValid() && !r.Dst.Contains(dst) {
		m = false
	}
	if m && r.HasMark && o.Mark&r.Mask != r.Mark&r.Mask {
		m = false
	}
	if m && r.IIF != "" && r.IIF != o.IIF && !(r.IIF == "lo" && o.IIF == "") {
		m = false
	}
	if m && r.OIF != "" && r.OIF != o.OIF {
		m = false
	}
	return m != r.Not
}

// lookupTable is fib_table_lookup: nil result (and nil error) means "continue with the next
// rule" (no match, or a throw route).
func (s *Stack) lookupTable(ti *tableIndex, dst netip.Addr, o LookupOptions) (*Result, error) {
	if ti == nil {
		return nil, nil
	}
	lens := ti.lens4
	if !dst.Is4() {
		lens = ti.lens6
	}
	for _, l := range lens {
		var cands []*Route
		if dst.Is4() {
			cands = ti.v4[l][v4key(dst, l)]
		} else {
			p, err := dst.Prefix(l)
			if err != nil {
				continue
			}
			cands = ti.byLen[l+1000][p]
		}
		for _, r := range cands {
			if r.Flags&FlagDead != 0 {
				continue
			}
			if o.OIF != "" && r.Dev != "" && r.Dev != o.OIF && r.Type == TypeUnicast {
				continue
			}
			if r.Dev != "" && r.Type == TypeUnicast {
				if l := s.LinkByName(r.Dev); l != nil && !l.Up() {
					continue // nexthop dead: link down
				}
			}
			switch r.Type {
			case TypeThrow:
				return nil, nil
			case TypeUnreachable:
				return nil, &LookupError{Dst: dst, Kind: ErrHostUnreachable, Route: r}
			case TypeProhibit:
				return nil, &LookupError{Dst: dst, Kind: ErrProhibited, Route: r}
			}
			return s.result(r, dst), nil
		}
	}
	return nil, nil
}

func (s *Stack) result(r *Route, dst netip.Addr) *Result {
	res := &Result{Route: r, Table: r.Table, Type: r.Type, Dev: r.Dev, Gateway: r.Gw, Onlink: r.Flags&FlagOnlink != 0}
	if len(r.MultiPath) > 0 {
		h := r.MultiPath[0]
		res.Dev, res.Gateway, res.Onlink = h.Dev, h.Gw, h.Flags&FlagOnlink != 0
		res.NextHops = r.MultiPath
	}
	switch {
	case r.Src.IsValid():
		res.Src = r.Src
	case r.Type == TypeLocal:
		res.Src = dst
	case r.Type == TypeBlackhole:
	default:
		res.Src = s.SelectAddr(res.Dev, res.Gateway, r.Scope)
	}
	if r.Type == TypeLocal {
		res.Dev = "lo"
	}
	return res
}

// SelectAddr picks a source address as the kernel's inet_select_addr: the first primary
// IPv4 address on dev whose scope is not narrower than scope, preferring one in the same
// subnet as dst; failing that, the first primary address of another device (in ifindex
// registration order) whose scope is neither link nor narrower than scope.
func (s *Stack) SelectAddr(dev string, dst netip.Addr, scope Scope) netip.Addr {
	var first netip.Addr
	for _, a := range s.Addrs {
		if a.Dev != dev || !a.Prefix.Addr().Is4() || a.Flags&AddrSecondary != 0 || a.Scope > scope {
			continue
		}
		if !dst.IsValid() || a.Prefix.Masked().Contains(dst) {
			return a.Prefix.Addr()
		}
		if !first.IsValid() {
			first = a.Prefix.Addr()
		}
	}
	if first.IsValid() {
		return first
	}
	// for_each_netdev walks devices in registration order, lo first.
	for _, l := range s.Links {
		for _, a := range s.Addrs {
			if a.Dev == l.Name && a.Prefix.Addr().Is4() && a.Flags&AddrSecondary == 0 &&
				a.Scope != ScopeLink && a.Scope <= scope {
				return a.Prefix.Addr()
			}
		}
	}
	return netip.Addr{}
}
