package compare

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	dpnft "github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
	"github.com/knet-dev/knet/render/kubeproxy/ipvs"
	"github.com/knet-dev/knet/render/kubeproxy/nftables"
	"github.com/knet-dev/knet/trace"
)

// IPVSDestMessageBytes is the size of one IPVS_CMD_NEW_DEST / IPVS_CMD_DEL_DEST generic
// netlink message as moby/ipvs builds it (nlmsghdr 16 + genlmsghdr 4 + service nest 48 +
// destination nest 72), what an endpoint change costs IPVS besides the iptables-restore.
const IPVSDestMessageBytes = 140

// Measure is what one render of a representative node gives. Counts are float64 because
// extrapolated values are fitted lines.
type Measure struct {
	// IPTablesRules counts the rules in every iptables table of the node (kube-proxy's and
	// kubelet's; Calico's Felix rules are not rendered).
	IPTablesRules float64 `json:"iptablesRules"`
	IPVSServices  float64 `json:"ipvsServices"`
	IPVSDests     float64 `json:"ipvsDests"`
	IPSetMembers  float64 `json:"ipsetMembers"`
	// NFTChains, NFTRules and NFTElements count kube-proxy's nftables table.
	NFTChains   float64 `json:"nftChains"`
	NFTRules    float64 `json:"nftRules"`
	NFTElements float64 `json:"nftElements"`
	Routes      float64 `json:"routes"`
	// Objects is the total the mode programs: iptables rules + IPVS services and real
	// servers + ipset members + nft chains, rules and set/map elements + kube-ipvs0 addresses.
	Objects float64 `json:"objects"`
	// FirstPacket* are the rules a Service's first packet (pod → ClusterIP) is examined
	// against, for the best, median and worst Service.
	FirstPacketBest   float64 `json:"firstPacketBest"`
	FirstPacketMedian float64 `json:"firstPacketMedian"`
	FirstPacketWorst  float64 `json:"firstPacketWorst"`
	// FullSyncBytes is the size of kube-proxy's full sync (iptables-restore input, nft
	// transaction, or IPVS-mode restore + one netlink message per virtual/real server);
	// EndpointChangeBytes that of the partial sync after one endpoint changed.
	FullSyncBytes       float64 `json:"fullSyncBytes"`
	EndpointChangeBytes float64 `json:"endpointChangeBytes"`
}

func (m *Measure) fields() []*float64 {
	return []*float64{&m.IPTablesRules, &m.IPVSServices, &m.IPVSDests, &m.IPSetMembers, &m.NFTChains, &m.NFTRules,
		&m.NFTElements, &m.Routes, &m.Objects, &m.FirstPacketBest, &m.FirstPacketMedian, &m.FirstPacketWorst,
		&m.FullSyncBytes, &m.EndpointChangeBytes}
}

// Path is how pod traffic leaves the representative node towards a peer node.
type Path struct {
	Dev string `json:"dev"`
	// Encap is "ipip", "vxlan" or "" (none); Overhead its outer header bytes.
	Encap    string `json:"encap,omitempty"`
	Overhead int    `json:"overhead"`
	// TunnelMTU is the encapsulating device's MTU (the inner packet's limit).
	TunnelMTU int `json:"tunnelMTU,omitempty"`
	// Route is the route that matched, as `ip route` shows its destination.
	Route string `json:"route"`
	// ViaDefault says the pod block had no route of its own: the packet follows the default
	// route and the underlay must route pod CIDRs (or it is lost).
	ViaDefault bool `json:"viaDefault,omitempty"`
	// ViaRouter says the packet leaves unencapsulated to a next hop that is not the peer
	// node (the subnet's router): the underlay must route pod addresses (cloud route
	// tables or BGP peering with the routers, source/destination checks off).
	ViaRouter bool `json:"viaRouter,omitempty"`
}

// shape is what does not scale with the profile: paths, MTU, notes.
type shape struct {
	Same, Cross Path
	PodMTU      int
	Notes       []string
}

// measureOne renders the representative node (subnet 0, node 0) of c and measures it.
func measureOne(c *cluster.Cluster, services int) (Measure, shape, error) {
	return measure(c, services, true)
}

// measure is measureOne; without full it only counts the rendered state (no first-packet
// traces, no sync sizes), which is all a node-count sample needs.
func measure(c *cluster.Cluster, services int, full bool) (Measure, shape, error) {
	var m Measure
	var sh shape
	name := synthNode(0, 0)
	node, notes, err := render.NodeWithNotes(c, name)
	if err != nil {
		return m, sh, err
	}
	sh.Notes = notes
	countNode(node, &m)
	if err := pathShape(c, node, &sh); err != nil {
		return m, sh, err
	}
	if !full {
		return m, sh, nil
	}
	if err := firstPacket(c, node, services, &m); err != nil {
		return m, sh, fmt.Errorf("first packet: %w", err)
	}
	if err := syncBytes(c, node, services, &m); err != nil {
		return m, sh, fmt.Errorf("sync size: %w", err)
	}
	return m, sh, nil
}

func countNode(n *dataplane.Node, m *Measure) {
	if n.IPTables != nil {
		for _, t := range n.IPTables.Tables {
			for _, ch := range t.Chains {
				m.IPTablesRules += float64(len(ch.Rules))
			}
		}
	}
	if n.IPVS != nil {
		m.IPVSServices = float64(len(n.IPVS.Services))
		for _, s := range n.IPVS.Services {
			m.IPVSDests += float64(len(s.Dests))
		}
	}
	if n.IPSets != nil {
		for _, s := range n.IPSets.Sets {
			m.IPSetMembers += float64(len(s.Members))
		}
	}
	if n.NFTables != nil {
		for _, t := range n.NFTables.Tables {
			for _, ch := range t.Chains {
				m.NFTChains++
				m.NFTRules += float64(len(ch.Rules))
			}
			for _, s := range t.Sets {
				m.NFTElements += float64(len(s.Elements))
			}
		}
	}
	dummy := 0.0
	if n.Net != nil {
		m.Routes = float64(len(n.Net.Routes))
		for _, a := range n.Net.Addrs {
			if a.Dev == ipvs.DummyDevice {
				dummy++
			}
		}
	}
	m.Objects = m.IPTablesRules + m.IPVSServices + m.IPVSDests + m.IPSetMembers + m.NFTChains + m.NFTRules + m.NFTElements + dummy
}

// pathShape looks up, on the representative node, the route to a pod of a same-subnet
// peer and of a cross-subnet peer, and reads the client pod's eth0 MTU.
func pathShape(c *cluster.Cluster, node *dataplane.Node, sh *shape) error {
	look := func(peer string) (Path, error) {
		pn := c.NodeByName(peer)
		if pn == nil {
			return Path{}, nil
		}
		dst := pn.PodCIDR.Masked().Addr().Next().Next()
		res, err := node.Net.Lookup(dst, route.LookupOptions{})
		if err != nil {
			return Path{Dev: "unreachable", Route: err.Error()}, nil
		}
		p := Path{Dev: res.Dev}
		if res.Gateway.IsValid() && res.Gateway != pn.IP {
			p.ViaRouter = true
		}
		if res.Route != nil {
			p.Route = res.Route.Dst.String()
			p.ViaDefault = res.Route.Dst.Bits() == 0
		}
		for _, l := range node.Net.Links {
			if l.Name != res.Dev {
				continue
			}
			switch l.Kind {
			case route.KindIPIP:
				p.Encap, p.Overhead, p.TunnelMTU = "ipip", trace.IPIPOverhead, l.MTU
			case route.KindVXLAN:
				p.Encap, p.Overhead, p.TunnelMTU = "vxlan", trace.VXLANOverhead, l.MTU
			}
		}
		return p, nil
	}
	var err error
	if sh.Same, err = look(synthNode(0, 1)); err != nil {
		return err
	}
	if sh.Cross, err = look(synthNode(1, 0)); err != nil {
		return err
	}
	pod := node.Pods["default/"+clientPod(synthNode(0, 0))]
	if pod != nil && pod.Net != nil {
		for _, l := range pod.Net.Links {
			if l.Name == "eth0" {
				sh.PodMTU = l.MTU
			}
		}
	}
	if sh.PodMTU == 0 {
		return fmt.Errorf("node %s: the client pod has no eth0", node.Name)
	}
	return nil
}

// tracedServices picks at most 40 Services evenly (always the first and the last).
func tracedServices(n int) []int {
	const most = 40
	if n <= most {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, most)
	for k := range most {
		out = append(out, k*(n-1)/(most-1))
	}
	return out
}

// firstPacket runs the first packet of a connection from the client pod to Services
// through the node's evaluator (netfilter for iptables and IPVS mode, nftables' Trace for
// nftables mode) and counts the rules examined.
func firstPacket(c *cluster.Cluster, node *dataplane.Node, services int, m *Measure) error {
	var podIP netip.Addr
	for _, p := range c.Objects.Pods {
		if p.Name == clientPod(node.Name) {
			podIP, _ = netip.ParseAddr(p.Status.PodIP)
		}
	}
	if !podIP.IsValid() {
		return fmt.Errorf("client pod on %s has no IP", node.Name)
	}
	veth := ""
	if r, err := node.Net.Lookup(podIP, route.LookupOptions{}); err == nil {
		veth = r.Dev
	}
	local := trace.LocalAddrsFromStack(node.Net)
	var counts []int
	switch c.Proxy.Mode {
	case cluster.ProxyIPTables, cluster.ProxyIPVS:
		idx := ruleIndex(node.IPTables)
		tn, err := trace.NewNode(node.Name, node.IPTables, nil, nil)
		if err != nil {
			return err
		}
		tn.Net = node.Net
		if node.IPSets != nil {
			tn.Sets = trace.SetMatcher{Sets: node.IPSets}
		}
		tn.FormatRule = func(chain string, r *netfilter.Rule) string { return idx[r] }
		for _, i := range tracedServices(services) {
			res, err := trace.Trace(tn, trace.Request{Src: podIP, Dst: serviceIP(i), Proto: trace.TCP, DPort: servicePort, InIface: veth})
			if err != nil {
				return err
			}
			path := res.Path
			if len(res.Branches) > 0 {
				path = res.Branches[len(res.Branches)-1].Path
			}
			n := examinedNetfilter(path, node.IPTables)
			if c.Proxy.Mode == cluster.ProxyIPVS && node.IPVS != nil {
				n++ // the IPVS virtual-server hash lookup at LOCAL_IN
			}
			counts = append(counts, n)
		}
	case cluster.ProxyNFTables:
		for _, i := range tracedServices(services) {
			outs, err := node.NFTables.Trace(dpnft.Packet{Src: podIP, Dst: serviceIP(i), Proto: "tcp", SPort: trace.DefaultSPort, DPort: servicePort, IIF: veth},
				local.IsLocal, dpnft.TraceOptions{})
			if err != nil {
				return err
			}
			if len(outs) == 0 {
				return fmt.Errorf("nftables trace to %s gave no outcome", serviceIP(i))
			}
			counts = append(counts, examinedNFT(outs[len(outs)-1].Path, node.NFTables))
		}
	}
	sort.Ints(counts)
	m.FirstPacketBest = float64(counts[0])
	m.FirstPacketMedian = float64(counts[len(counts)/2])
	m.FirstPacketWorst = float64(counts[len(counts)-1])
	return nil
}

// ruleIndex gives every rule a path label "table\x00chain\x00position\x00jump-target".
func ruleIndex(rs *netfilter.Ruleset) map[*netfilter.Rule]string {
	out := map[*netfilter.Rule]string{}
	for _, t := range rs.Tables {
		for _, ch := range t.Chains {
			for i, r := range ch.Rules {
				jump := ""
				if r.Target != nil {
					if tc := t.Chain(r.Target.TargetName()); tc != nil && !tc.Builtin {
						jump = tc.Name
					}
				}
				out[r] = string(t.Name) + "\x00" + ch.Name + "\x00" + strconv.Itoa(i+1) + "\x00" + jump
			}
		}
	}
	return out
}

// xstep is one evaluated rule in a scope (hook and table): its chain, its position (the
// chain's length for a policy) and the user chain it jumps to.
type xstep struct {
	scope, chain string
	num          int
	jump         string
}

// examined counts the rules evaluated along a path of matched rules: in every chain visit,
// the rules up to the last one that matched, or the whole chain when the walk returned from
// it (fell off its end).
func examined(steps []xstep, chainLen func(scope, chain string) int) int {
	total := 0
	type frame struct {
		chain string
		last  int
	}
	var stack []frame
	scope := ""
	flush := func() {
		for _, f := range stack {
			if f.last == 0 {
				total += chainLen(scope, f.chain)
			} else {
				total += f.last
			}
		}
		stack = stack[:0]
	}
	for _, s := range steps {
		if s.scope != scope {
			flush()
			scope = s.scope
		}
		for len(stack) > 0 && stack[len(stack)-1].chain != s.chain {
			total += chainLen(scope, stack[len(stack)-1].chain)
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			stack = append(stack, frame{chain: s.chain})
		}
		stack[len(stack)-1].last = s.num
		if s.jump != "" {
			stack = append(stack, frame{chain: s.jump})
		}
	}
	flush()
	return total
}

func examinedNetfilter(path []trace.Hop, rs *netfilter.Ruleset) int {
	var steps []xstep
	lens := func(scope, chain string) int {
		table := scope[strings.IndexByte(scope, '/')+1:]
		if t := rs.Table(netfilter.TableName(table)); t != nil {
			if ch := t.Chain(chain); ch != nil {
				return len(ch.Rules)
			}
		}
		return 0
	}
	for _, h := range path {
		if h.Chain == "" {
			continue
		}
		scope := h.Hook + "/" + h.Table
		if strings.HasPrefix(h.Rule, "-P ") {
			steps = append(steps, xstep{scope: scope, chain: h.Chain, num: max(1, lens(scope, h.Chain))})
			continue
		}
		parts := strings.Split(h.Rule, "\x00")
		if len(parts) != 4 {
			continue
		}
		num, _ := strconv.Atoi(parts[2])
		steps = append(steps, xstep{scope: scope, chain: h.Chain, num: num, jump: parts[3]})
	}
	return examined(steps, lens)
}

func examinedNFT(path []dpnft.Step, rs *dpnft.Ruleset) int {
	lens := map[string]int{}
	for _, t := range rs.Tables {
		for _, ch := range t.Chains {
			lens[string(t.Family)+" "+t.Name+"\x00"+ch.Name] = len(ch.Rules)
		}
	}
	var steps []xstep
	for _, s := range path {
		scope := string(s.Hook) + "/" + string(s.Family) + " " + s.Table
		num := s.Rule
		if num == 0 {
			num = max(1, lens[string(s.Family)+" "+s.Table+"\x00"+s.Chain])
		}
		jump := ""
		if f := strings.Fields(s.Verdict); len(f) == 2 && (f[0] == "jump" || f[0] == "goto") {
			jump = f[1]
		}
		steps = append(steps, xstep{scope: scope, chain: s.Chain, num: num, jump: jump})
	}
	return examined(steps, func(scope, chain string) int {
		return lens[scope[strings.IndexByte(scope, '/')+1:]+"\x00"+chain]
	})
}

// syncBytes renders kube-proxy's full sync and the partial sync after one endpoint change.
func syncBytes(c *cluster.Cluster, node *dataplane.Node, services int, m *Measure) error {
	cfg := render.ProxyConfig(c)
	var obj = c.Objects.Nodes[0]
	for _, n := range c.Objects.Nodes {
		if n.Name == node.Name {
			obj = n
		}
	}
	version := strings.TrimPrefix(c.Proxy.Version, "v")
	if p := strings.SplitN(version, ".", 3); len(p) >= 2 {
		version = p[0] + "." + p[1]
	}
	var local []netip.Addr
	for _, a := range node.Net.Addrs {
		if ip := a.Prefix.Addr(); ip.Is4() && !ip.IsLoopback() && a.Dev != ipvs.DummyDevice {
			local = append(local, ip)
		}
	}
	// Service 0 (a plain ClusterIP Service) changes at every size, so samples compare.
	changed := 0
	switch c.Proxy.Mode {
	case cluster.ProxyIPTables:
		opts, err := iptables.OptionsFromConfig(cfg, obj, node.Name, kubeproxy.IPv4)
		if err != nil {
			return err
		}
		opts.Version = version
		p := iptables.NewProxier(opts)
		full, err := p.Sync(c.Objects)
		if err != nil {
			return err
		}
		changeOneEndpoint(c, changed)
		part, err := p.Sync(c.Objects)
		if err != nil {
			return err
		}
		m.FullSyncBytes, m.EndpointChangeBytes = float64(len(full)), float64(len(part))
	case cluster.ProxyIPVS:
		opts, err := ipvs.OptionsFromConfig(cfg, obj, node.Name, kubeproxy.IPv4)
		if err != nil {
			return err
		}
		opts.Version = version
		opts.LocalAddresses = local
		full, err := ipvs.Render(c.Objects, opts)
		if err != nil {
			return err
		}
		changeOneEndpoint(c, changed)
		part, err := ipvs.Render(c.Objects, opts)
		if err != nil {
			return err
		}
		// A full sync writes every virtual and real server; a partial one the restore (kube-proxy's
		// IPVS mode always restores its whole, small, iptables ruleset) plus deleting the old real
		// server and adding the new one.
		objs := 0
		for _, s := range full.IPVS.Services {
			objs += 1 + len(s.Dests)
		}
		m.FullSyncBytes = float64(len(full.Restore) + objs*IPVSDestMessageBytes)
		m.EndpointChangeBytes = float64(len(part.Restore) + 2*IPVSDestMessageBytes*ipvsDestsOf(part, serviceIP(changed)))
	case cluster.ProxyNFTables:
		opts, err := nftables.OptionsFromConfig(cfg, obj, node.Name, kubeproxy.IPv4, local, []netip.Prefix{c.ServiceCIDR})
		if err != nil {
			return err
		}
		opts.Version = "v" + version
		f := knftables.NewFake(knftables.IPv4Family, "kube-proxy")
		p, err := nftables.New(opts, f, nil)
		if err != nil {
			return err
		}
		if err := p.Sync(context.Background(), c.Objects); err != nil {
			return err
		}
		full := f.LastTransaction.String()
		changeOneEndpoint(c, changed)
		if err := p.Sync(context.Background(), c.Objects); err != nil {
			return err
		}
		m.FullSyncBytes, m.EndpointChangeBytes = float64(len(full)), float64(len(f.LastTransaction.String()))
	}
	return nil
}

// ipvsDestsOf is 1 when the virtual server at vip has real servers (one was replaced), else 0.
func ipvsDestsOf(res *ipvs.Result, vip netip.Addr) int {
	for _, s := range res.IPVS.Services {
		if s.Addr == vip && len(s.Dests) > 0 {
			return 1
		}
	}
	return 0
}
