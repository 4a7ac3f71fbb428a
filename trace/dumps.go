package trace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/knet-dev/knet/dataplane/ipset"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
	fmtipset "github.com/knet-dev/knet/format/ipset"
	"github.com/knet-dev/knet/format/iptablessave"
)

// Dump is one input file: its name (for messages) and content.
type Dump struct {
	Name string
	Data []byte
}

// Dumps are the native dumps of one node `knet trace` reads.
type Dumps struct {
	// IPTablesSave are iptables-save and/or ip6tables-save outputs (the family is detected
	// from each file); at most one per family.
	IPTablesSave []Dump
	// IPSet is an `ipset save` or `ipset list` output.
	IPSet *Dump
	// IPAddr is an `ip addr` output, IPRoute an `ip route show table all` (or `ip route`)
	// output.
	IPAddr, IPRoute *Dump
	// LocalIPs are extra local addresses (--local-ip).
	LocalIPs []netip.Addr
}

// Warning is something a parser skipped, with its position.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg) }

// NodeFromDumps builds a Node from dumps. Structural errors in a dump are errors (with file
// and line); what a parser kept verbatim or skipped is returned as warnings.
func NodeFromDumps(name string, d Dumps) (*Node, []Warning, error) {
	var warns []Warning
	var v4, v6 *netfilter.Ruleset
	for _, f := range d.IPTablesSave {
		rs, diags, err := iptablessave.Parse(bytes.NewReader(f.Data), f.Name)
		for _, dg := range diags {
			warns = append(warns, Warning{File: f.Name, Line: dg.Line, Msg: dg.Message})
		}
		if err != nil {
			return nil, warns, err
		}
		switch rs.Family {
		case netfilter.IPv6:
			if v6 != nil {
				return nil, warns, fmt.Errorf("%s: a second ip6tables dump", f.Name)
			}
			v6 = rs
		default:
			if v4 != nil {
				return nil, warns, fmt.Errorf("%s: a second iptables dump", f.Name)
			}
			v4 = rs
		}
	}
	if v4 == nil && v6 == nil {
		return nil, warns, errors.New("no iptables-save dump given")
	}
	var stack *route.Stack
	if d.IPAddr != nil || d.IPRoute != nil {
		stack = route.New()
		if d.IPAddr != nil {
			if ps := iproute.ParseAddrs(stack, d.IPAddr.Name, d.IPAddr.Data); len(ps) > 0 {
				for _, p := range ps {
					warns = append(warns, Warning{File: p.File, Line: p.Line, Msg: p.Msg + ": " + p.Text})
				}
			}
		}
		if d.IPRoute != nil {
			if ps := iproute.ParseRoutes(stack, d.IPRoute.Name, d.IPRoute.Data, iproute.Options{}); len(ps) > 0 {
				for _, p := range ps {
					warns = append(warns, Warning{File: p.File, Line: p.Line, Msg: p.Msg + ": " + p.Text})
				}
			}
		}
	}
	var addrs []netip.Addr
	if stack != nil {
		addrs = append(addrs, LocalAddrsFromStack(stack).Addrs()...)
	}
	addrs = append(addrs, d.LocalIPs...)
	local := netfilter.NewLocalAddrs(addrs...)
	n, err := NewNode(name, v4, v6, local)
	if err != nil {
		return nil, warns, err
	}
	// Only route with the FIB when routes were given; an `ip addr` dump alone gives the
	// local addresses.
	if d.IPRoute != nil {
		for _, err := range addKernelLocalRoutes(stack) {
			warns = append(warns, Warning{File: d.IPRoute.Name, Msg: err.Error()})
		}
		n.Net = stack
	}
	if d.IPSet != nil {
		dump, err := fmtipset.Parse(d.IPSet.Name, d.IPSet.Data)
		if err != nil {
			return nil, warns, err
		}
		for _, s := range dump.Skipped {
			warns = append(warns, Warning{File: d.IPSet.Name, Line: s.Line, Msg: s.Reason + ": " + s.Text})
		}
		n.Sets = SetMatcher{Sets: dump.Sets}
	}
	return n.Indexed(), warns, nil
}

// SetMatcher adapts the ipset model to the netfilter evaluator's `-m set` matches.
type SetMatcher struct{ Sets *ipset.Sets }

// MatchSet implements netfilter.SetMatcher with ipset's ip_set_test semantics.
func (m SetMatcher) MatchSet(name string, dirs []string, p netfilter.Packet) (bool, error) {
	ds := make([]ipset.Dir, len(dirs))
	for i, d := range dirs {
		ds[i] = ipset.Dir(d)
	}
	return m.Sets.Test(name, ds, ipset.Packet{Src: p.Src, Dst: p.Dst, Proto: p.Proto, SrcPort: p.SPort, DstPort: p.DPort})
}

// ReadDump reads a whole dump.
func ReadDump(name string, r io.Reader) (Dump, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Dump{}, fmt.Errorf("read %s: %w", name, err)
	}
	return Dump{Name: name, Data: b}, nil
}

// addKernelLocalRoutes adds, when the route dump has no table local (a plain `ip route` shows
// main only), the `local ADDR dev D table local proto kernel scope host src ADDR` route the
// kernel makes for every address (fib_add_ifaddr), so a packet to any local address — a
// kube-ipvs0 Service address included — is delivered locally as on the node.
// It returns the routes it could not add.
func addKernelLocalRoutes(s *route.Stack) []error {
	for _, r := range s.Routes {
		if r.Table == route.TableLocal {
			return nil
		}
	}
	var errs []error
	for _, a := range s.Addrs {
		addr := a.Prefix.Addr()
		err := s.RouteAdd(&route.Route{Table: route.TableLocal, Type: route.TypeLocal, Dst: netip.PrefixFrom(addr, addr.BitLen()),
			Dev: a.Dev, Protocol: route.ProtoKernel, Scope: route.ScopeHost, Src: addr})
		if err != nil && !errors.Is(err, route.ErrExist) {
			errs = append(errs, fmt.Errorf("local route for %s: %w", a.Prefix, err))
		}
	}
	return errs
}
