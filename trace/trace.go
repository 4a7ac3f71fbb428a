// Package trace follows one packet through one Linux node's netfilter hooks, from dumps or
// from a rendered dataplane.Node: the iptables tables in kernel order at each hook
// (PREROUTING, then the routing decision, then INPUT or FORWARD, OUTPUT for locally
// generated packets, then POSTROUTING), with every possible DNAT destination and its
// probability, whether the connection is masqueraded, and the rules it went through.
//
// The semantics are those of Linux 6.x netfilter with iptables v1.8.x rules (see the
// evaluator in dataplane/netfilter): nat runs only for a connection's first packet, a
// locally generated packet to a local address goes OUTPUT → POSTROUTING → (lo) PREROUTING →
// INPUT with nat consulted once per manipulation, and masquerading is reported when a
// MASQUERADE or SNAT target fires in POSTROUTING (kube-proxy's 0x4000 mark rule).
//
// The cross-node tracer (`knet trace --preset/-f --from --to`) lives in this package's
// cluster*.go files.
package trace

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
)

// Protocol is a transport protocol; the values are the CLI tokens.
type Protocol string

// Protocols `knet trace --proto` accepts.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// ParseProtocol parses a --proto value.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(s)); p {
	case TCP, UDP, SCTP:
		return p, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", s)
}

// Request is the packet to trace: the first packet of a new connection.
type Request struct {
	Src, Dst netip.Addr
	Proto    Protocol
	// SPort defaults to 40000 when zero (an ephemeral port; no kube-proxy rule matches on it).
	SPort, DPort uint16
	// InIface is the interface a packet from the network arrives on (optional).
	InIface string
	// Mark is the initial packet mark (0 normally).
	Mark uint32
}

// DefaultSPort is the source port used when a Request does not give one.
const DefaultSPort = 40000

// Node is what the tracer knows about one node.
type Node struct {
	// Name names the node in the path ("node" when empty).
	Name string
	// IPv4 and IPv6 are the iptables and ip6tables rulesets; either may be nil.
	IPv4, IPv6 *netfilter.Evaluator
	// Local are the node's local addresses. When nil and Net is set, they are Net's
	// addresses.
	Local *netfilter.LocalAddrs
	// Net is the node's links, addresses and routes; when set, the routing decision is a
	// FIB lookup (local delivery, forwarding with the output device, or unreachable),
	// otherwise a destination is local iff it is in Local.
	Net *route.Stack
	// Sets answers ipset matches (nil: set matches are assumed and reported).
	Sets netfilter.SetMatcher
	// Recent is the xt_recent state (ClientIP affinity), empty by default.
	Recent netfilter.RecentState
	// FormatRule prints a rule for the path ("-A CHAIN ..."); nil uses the rule's source
	// text (Rule.Text).
	FormatRule func(chain string, r *netfilter.Rule) string

	// texts caches the printed rules (*netfilter.Rule -> string); nil disables the cache.
	texts *sync.Map
}

// NewNode compiles the rulesets (either may be nil) into a Node. It fails like
// iptables-restore on a jump loop or a jump to a missing chain.
func NewNode(name string, v4, v6 *netfilter.Ruleset, local *netfilter.LocalAddrs) (*Node, error) {
	n := &Node{Name: name, Local: local, texts: &sync.Map{}}
	var err error
	if v4 != nil {
		if n.IPv4, err = netfilter.NewEvaluator(v4); err != nil {
			return nil, fmt.Errorf("iptables: %w", err)
		}
	}
	if v6 != nil {
		if n.IPv6, err = netfilter.NewEvaluator(v6); err != nil {
			return nil, fmt.Errorf("ip6tables: %w", err)
		}
	}
	return n, nil
}

// Indexed returns a copy of n whose evaluators use dispatch indexes (same results, faster
// on large rulesets).
func (n *Node) Indexed() *Node {
	c := *n
	if c.IPv4 != nil {
		c.IPv4 = c.IPv4.Indexed()
	}
	if c.IPv6 != nil {
		c.IPv6 = c.IPv6.Indexed()
	}
	return &c
}

// LocalAddrsFromStack returns the addresses configured on s's links.
func LocalAddrsFromStack(s *route.Stack) *netfilter.LocalAddrs {
	var addrs []netip.Addr
	for _, a := range s.Addrs {
		addrs = append(addrs, a.Prefix.Addr())
	}
	l := netfilter.NewLocalAddrs(addrs...)
	for _, a := range s.Addrs {
		if a.Broadcast.IsValid() {
			l.AddBroadcast(a.Broadcast)
		}
	}
	return l
}

// Trace runs req through n and returns every possible outcome with its path.
func Trace(n *Node, req Request) (*Result, error) { return run(n, req, true) }

// TraceBrief is Trace without the paths (Result.Path and each branch's Path are nil): the
// verdicts, DNAT destinations with probabilities and masquerading only. It is what bulk
// checks (every Service of a node) need, and several times cheaper.
func TraceBrief(n *Node, req Request) (*Result, error) { return run(n, req, false) }

func run(n *Node, req Request, paths bool) (*Result, error) {
	if !req.Src.IsValid() || !req.Dst.IsValid() {
		return nil, errors.New("trace: source and destination addresses are required")
	}
	src, dst := req.Src.Unmap(), req.Dst.Unmap()
	if src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("trace: source %s and destination %s are of different families", src, dst)
	}
	if req.Proto == "" {
		req.Proto = TCP
	}
	if req.DPort == 0 {
		return nil, errors.New("trace: destination port is required")
	}
	if req.SPort == 0 {
		req.SPort = DefaultSPort
	}
	ev := n.IPv4
	fam := "iptables"
	if src.Is6() {
		ev, fam = n.IPv6, "ip6tables"
	}
	if ev == nil {
		return nil, fmt.Errorf("trace: no %s ruleset for a %s packet", fam, familyWord(src))
	}
	local := n.Local
	if local == nil && n.Net != nil {
		local = LocalAddrsFromStack(n.Net)
	}
	if local == nil {
		local = netfilter.NewLocalAddrs()
	}
	env := netfilter.NewEnv(local)
	env.Sets, env.Recent, env.NoSteps = n.Sets, n.Recent, !paths
	t := &tracer{n: n, ev: ev, env: env, paths: paths}
	pkt := netfilter.Packet{Src: src, Dst: dst, Proto: string(req.Proto), SPort: req.SPort, DPort: req.DPort, Mark: req.Mark}
	start := netfilter.NewBranch(pkt, env)
	var out []*flow
	if local.IsLocal(src) {
		// Sent by the node itself: OUTPUT, rerouting, POSTROUTING; a local destination is
		// then looped back through lo (PREROUTING, INPUT).
		t.output(&flow{b: start, origin: "local"}, func(f *flow) { out = append(out, f) })
	} else {
		start.Packet.InIface = req.InIface
		if req.InIface == "" && n.Net != nil {
			// The interface the packet arrives on is, for a sane network, the one the route
			// back to its source uses (what rp_filter checks).
			if back, err := n.Net.Lookup(src, route.LookupOptions{}); err == nil && back.Type == route.TypeUnicast {
				start.Packet.InIface = back.Dev
			}
		}
		t.prerouting(&flow{b: start, origin: "network"}, func(f *flow) { out = append(out, f) })
	}
	return newResult(n, req, out, paths), nil
}

func familyWord(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// flow is a branch plus the hops that are not netfilter rules (routing decisions).
type flow struct {
	b      *netfilter.Branch
	origin string
	// routes are routing decisions, each placed after the netfilter step count it follows.
	routes []routeHop
	// delivered says where the packet ends: "local" (a local socket) or "forwarded".
	delivered string
}

type routeHop struct {
	after int
	hop   Hop
}

type tracer struct {
	n     *Node
	ev    *netfilter.Evaluator
	env   *netfilter.Env
	paths bool
}

func (t *tracer) addRoute(f *flow, h func() Hop) {
	if t.paths {
		f.routes = append(f.routes, routeHop{after: f.b.StepCount(), hop: h()})
	}
}

func (t *tracer) hook(h netfilter.Hook, f *flow, next func(*flow)) {
	out := t.ev.HookOne(h, t.env, f.b)
	if out == nil {
		next(f) // no fork: keep the flow
		return
	}
	for _, b := range out {
		next(&flow{b: b, origin: f.origin, routes: f.routes[:len(f.routes):len(f.routes)], delivered: f.delivered})
	}
}

// route decides where a packet goes after PREROUTING (input) or OUTPUT (output).
func (t *tracer) route(f *flow, input bool) (local bool, dev string, err error) {
	p := &f.b.Packet
	name := t.n.Name
	if name == "" {
		name = "node"
	}
	if t.n.Net != nil {
		o := route.LookupOptions{Mark: p.Mark}
		if input {
			o.Src, o.IIF = p.Src, p.InIface
		}
		res, lerr := t.n.Net.Lookup(p.Dst, o)
		if lerr != nil {
			t.addRoute(f, func() Hop { return Hop{Node: name, Route: lerr.Error()} })
			return false, "", lerr
		}
		t.addRoute(f, func() Hop {
			desc := fmt.Sprintf("%s %s", res.Type, p.Dst)
			if res.Route != nil && res.Route.Dst.IsValid() {
				desc = fmt.Sprintf("%s %s", res.Type, res.Route.Dst)
			}
			if res.Gateway.IsValid() {
				desc += " via " + res.Gateway.String()
			}
			return Hop{Node: name, Route: desc, Dev: res.Dev}
		})
		if res.Type == route.TypeBlackhole {
			return false, "", fmt.Errorf("route to %s: blackhole", p.Dst)
		}
		return res.Type == route.TypeLocal, res.Dev, nil
	}
	if t.env.Local.IsLocal(p.Dst) {
		t.addRoute(f, func() Hop { return Hop{Node: name, Route: "local " + p.Dst.String(), Dev: "lo"} })
		return true, "lo", nil
	}
	t.addRoute(f, func() Hop {
		if input {
			return Hop{Node: name, Route: p.Dst.String() + " (not local: forwarded)"}
		}
		return Hop{Node: name, Route: p.Dst.String() + " (not local: sent out)"}
	})
	return false, "", nil
}

func (t *tracer) prerouting(f *flow, done func(*flow)) {
	t.hook(netfilter.Prerouting, f, func(f *flow) {
		if f.b.Done() {
			done(f)
			return
		}
		local, dev, err := t.route(f, true)
		if err != nil {
			f.b.Verdict, f.b.DecidedBy = netfilter.DecisionDrop, DecidedByRoute
			done(f)
			return
		}
		if local {
			t.hook(netfilter.Input, f, func(f *flow) {
				if !f.b.Done() {
					f.delivered = "local"
				}
				done(f)
			})
			return
		}
		f.b.Packet.OutIface = dev
		t.hook(netfilter.Forward, f, func(f *flow) {
			if f.b.Done() {
				done(f)
				return
			}
			t.hook(netfilter.Postrouting, f, func(f *flow) {
				if !f.b.Done() {
					f.delivered = "forwarded"
				}
				done(f)
			})
		})
	})
}

func (t *tracer) output(f *flow, done func(*flow)) {
	t.hook(netfilter.Output, f, func(f *flow) {
		if f.b.Done() {
			done(f)
			return
		}
		local, dev, err := t.route(f, false)
		if err != nil {
			f.b.Verdict, f.b.DecidedBy = netfilter.DecisionDrop, DecidedByRoute
			done(f)
			return
		}
		f.b.Packet.OutIface = dev
		t.hook(netfilter.Postrouting, f, func(f *flow) {
			if f.b.Done() {
				done(f)
				return
			}
			if !local {
				f.delivered = "sent"
				done(f)
				return
			}
			// Looped back through lo: PREROUTING (nat already bound at OUTPUT), INPUT.
			f.b.Packet.InIface, f.b.Packet.OutIface = "lo", ""
			t.hook(netfilter.Prerouting, f, func(f *flow) {
				if f.b.Done() {
					done(f)
					return
				}
				t.hook(netfilter.Input, f, func(f *flow) {
					if !f.b.Done() {
						f.delivered = "local"
					}
					done(f)
				})
			})
		})
	})
}

// DecidedByRoute marks a packet dropped by the routing decision (no route).
const DecidedByRoute netfilter.DecidedBy = "route"
