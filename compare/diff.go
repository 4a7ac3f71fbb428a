package compare

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	dpnft "github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/render/kubeproxy/ipvs"
	"github.com/knet-dev/knet/trace"
)

// Outcome is what happens to a flow's first packet on the node that handles it.
type Outcome struct {
	// Verdict is ACCEPT, DROP or REJECT.
	Verdict string `json:"verdict"`
	// Delivered is "local" (a socket on the node), "forwarded" or "" when not accepted.
	Delivered string `json:"delivered,omitempty"`
	// DNAT is the set of possible destinations, sorted; empty when not translated.
	DNAT       []string `json:"dnat"`
	Masquerade bool     `json:"masquerade"`
	// Affinity is how ClientIP affinity is kept, for the affinity flow.
	Affinity string `json:"affinity,omitempty"`
}

func (o Outcome) String() string {
	s := o.Verdict
	if o.Delivered != "" {
		s += " " + o.Delivered
	}
	if len(o.DNAT) > 0 {
		s += " DNAT " + strings.Join(o.DNAT, ",")
	} else {
		s += " no DNAT"
	}
	if o.Masquerade {
		s += " masquerade"
	}
	if o.Affinity != "" {
		s += " affinity: " + o.Affinity
	}
	return s
}

// FlowChange is one flow evaluated in both modes.
type FlowChange struct {
	Flow    string  `json:"flow"`
	Packet  string  `json:"packet"`
	From    Outcome `json:"from"`
	To      Outcome `json:"to"`
	Changed bool    `json:"changed"`
	// Reason is the documented behaviour difference behind a change (anchors §D).
	Reason string `json:"reason,omitempty"`
}

// Leftover is state the old mode leaves on a node, with the commands that remove it.
type Leftover struct {
	What    string   `json:"what"`
	Items   []string `json:"items"`
	Cleanup []string `json:"cleanup"`
	// Automatic says whether kube-proxy in the new mode removes it when it starts.
	Automatic bool `json:"automatic"`
}

// Migration is what changes on a node when kube-proxy switches modes.
type Migration struct {
	Cluster   string            `json:"cluster"`
	Node      string            `json:"node"`
	From      cluster.ProxyMode `json:"from"`
	To        cluster.ProxyMode `json:"to"`
	Flows     []FlowChange      `json:"flows"`
	Leftovers []Leftover        `json:"leftovers"`
	Notes     []string          `json:"notes,omitempty"`
}

// Probe Services diff adds when the cluster has none of that kind (namespace knet-diff).
const probeNamespace = "knet-diff"

// Diff renders cluster c with kube-proxy in mode from and in mode to, runs a set of flows
// through a worker (the node of the first pod backing a Service) in both, and lists every
// flow whose verdict, DNAT set or masquerading changes, with the reason, and the state the
// old mode leaves behind with its clean-up commands.
func Diff(c *cluster.Cluster, from, to cluster.ProxyMode) (*Migration, error) {
	for _, m := range []cluster.ProxyMode{from, to} {
		if !slices.Contains(ProxyModes(), m) {
			return nil, fmt.Errorf("diff: unknown kube-proxy mode %q (want iptables, ipvs or nftables)", m)
		}
	}
	if from == to {
		return nil, fmt.Errorf("diff: --from and --to are both %s", from)
	}
	pc, probes, err := withProbes(c)
	if err != nil {
		return nil, err
	}
	mig := &Migration{Cluster: c.Name, From: from, To: to}
	client, target := probes.client, probes.target
	mig.Node = client.Spec.NodeName
	mig.Notes = append(mig.Notes, probes.notes...)
	nodes := map[cluster.ProxyMode]*dataplane.Node{}
	for _, m := range []cluster.ProxyMode{from, to} {
		cm := *pc
		cm.Proxy.Mode = m
		n, err := render.Node(&cm, mig.Node)
		if err != nil {
			return nil, fmt.Errorf("diff: %s mode: %w", m, err)
		}
		nodes[m] = n
	}
	src := netip.MustParseAddr(client.Status.PodIP)
	node := pc.NodeByName(mig.Node)
	external := netip.MustParseAddr("203.0.113.77")
	flows := []struct {
		name, reason string
		pkt          probe
	}{
		{"pod → ClusterIP on a defined port", "Service dispatch", probe{src: src, dst: target.ip, port: target.port, proto: "tcp"}},
		{"pod → ClusterIP on an undefined port", "ClusterIP on a port with no Service", probe{src: src, dst: target.ip, port: 9, proto: "tcp"}},
		{"pod → ping ClusterIP", "Ping a ClusterIP", probe{src: src, dst: target.ip, proto: "icmp"}},
		{"node → NodePort on 127.0.0.1", "NodePort on 127.0.0.1", probe{src: netip.MustParseAddr("127.0.0.1"), dst: netip.MustParseAddr("127.0.0.1"), port: probes.nodePort, proto: "tcp", local: true}},
		{"node → NodePort on the node IP", "NodePort addresses", probe{src: node.IP, dst: node.IP, port: probes.nodePort, proto: "tcp", local: true}},
		{"pod → LoadBalancer IP", "Pod → own Service LB IP", probe{src: src, dst: probes.lbIP, port: probes.lbPort, proto: "tcp"}},
		{"pod → Service with ClientIP affinity", "Session affinity", probe{src: src, dst: probes.sticky, port: probes.lbPort, proto: "tcp", affinity: true}},
		{"external → NodePort with externalTrafficPolicy=Local", "externalTrafficPolicy / internalTrafficPolicy Local", probe{src: external, dst: node.IP, port: probes.localNodePort, proto: "tcp", iif: node.Interface}},
	}
	reasons := map[string]Difference{}
	for _, d := range Differences() {
		reasons[d.Aspect] = d
	}
	reasons["externalTrafficPolicy / internalTrafficPolicy Local"] = Difference{Aspect: "externalTrafficPolicy Local",
		IPTables: "KUBE-SVL-* / KUBE-EXT-* chains", IPVS: "local-only real servers (more awkward)", NFTables: "separate local/cluster endpoint chains"}
	for _, f := range flows {
		fc := FlowChange{Flow: f.name, Packet: f.pkt.String()}
		if fc.From, err = evalFlow(from, nodes[from], f.pkt); err != nil {
			return nil, fmt.Errorf("diff: %s in %s mode: %w", f.name, from, err)
		}
		if fc.To, err = evalFlow(to, nodes[to], f.pkt); err != nil {
			return nil, fmt.Errorf("diff: %s in %s mode: %w", f.name, to, err)
		}
		fc.Changed = fc.From.String() != fc.To.String()
		if d, ok := reasons[f.reason]; ok {
			fc.Reason = fmt.Sprintf("%s — %s: %s; %s: %s", d.Aspect, from, modeText(d, from), to, modeText(d, to))
		}
		mig.Flows = append(mig.Flows, fc)
	}
	mig.Leftovers = leftovers(nodes[from], from, to)
	return mig, nil
}

func modeText(d Difference, m cluster.ProxyMode) string {
	switch m {
	case cluster.ProxyIPVS:
		return d.IPVS
	case cluster.ProxyNFTables:
		return d.NFTables
	}
	return d.IPTables
}

type probe struct {
	src, dst netip.Addr
	port     uint16
	proto    string
	local    bool
	iif      string
	affinity bool
}

func (p probe) String() string {
	if p.proto == "icmp" {
		return fmt.Sprintf("icmp echo %s → %s", p.src, p.dst)
	}
	return fmt.Sprintf("%s %s → %s", p.proto, p.src, netip.AddrPortFrom(p.dst, p.port))
}

type probeSet struct {
	client *corev1.Pod
	target struct {
		ip   netip.Addr
		port uint16
	}
	nodePort, localNodePort uint16
	lbIP, sticky            netip.Addr
	lbPort                  uint16
	notes                   []string
}

// withProbes returns a copy of c with three probe Services added (a LoadBalancer with an
// IP, a ClientIP-affinity Service and an externalTrafficPolicy=Local NodePort, all backed by
// the target Service's endpoints), the client pod and the target Service.
func withProbes(c *cluster.Cluster) (*cluster.Cluster, *probeSet, error) {
	ps := &probeSet{}
	// Target: the first TCP ClusterIP Service (not `kubernetes`) with a ready endpoint.
	var target *corev1.Service
	var slice *discoveryv1.EndpointSlice
	for _, s := range c.Objects.Services {
		if s.Name == "kubernetes" || s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
			continue
		}
		for _, es := range c.Objects.EndpointSlices {
			if es.Namespace == s.Namespace && es.Labels[discoveryv1.LabelServiceName] == s.Name && len(es.Endpoints) > 0 {
				target, slice = s, es
				break
			}
		}
		if target != nil {
			break
		}
	}
	if target == nil {
		return nil, nil, errors.New("diff: the cluster has no TCP ClusterIP Service with endpoints to probe")
	}
	ps.target.ip = netip.MustParseAddr(target.Spec.ClusterIP)
	ps.target.port = uint16(target.Spec.Ports[0].Port)
	// Client: a non-hostNetwork pod on a worker that is not an endpoint of the target.
	eps := map[string]bool{}
	for _, e := range slice.Endpoints {
		for _, a := range e.Addresses {
			eps[a] = true
		}
	}
	for _, p := range c.Objects.Pods {
		n := c.NodeByName(p.Spec.NodeName)
		if n != nil && n.Role == cluster.RoleWorker && !p.Spec.HostNetwork && p.Status.PodIP != "" && !eps[p.Status.PodIP] {
			ps.client = p
			break
		}
	}
	if ps.client == nil {
		return nil, nil, errors.New("diff: the cluster has no pod on a worker to send from")
	}
	// Probe Services at the top of the Service CIDR.
	last := c.ServiceCIDR.Masked().Addr()
	for i := 0; i < 1<<(32-c.ServiceCIDR.Bits())-8; i++ {
		last = last.Next()
	}
	used := map[string]bool{}
	for _, s := range c.Objects.Services {
		used[s.Spec.ClusterIP] = true
		for _, p := range s.Spec.Ports {
			used[fmt.Sprint(p.NodePort)] = true
		}
	}
	ip := func(k int) string {
		a := last
		for range k {
			a = a.Next()
		}
		return a.String()
	}
	nodePort := func(start int32) int32 {
		for used[fmt.Sprint(start)] {
			start++
		}
		used[fmt.Sprint(start)] = true
		return start
	}
	out := *c
	out.Objects.Services = slices.Clone(c.Objects.Services)
	out.Objects.EndpointSlices = slices.Clone(c.Objects.EndpointSlices)
	tcp := corev1.ProtocolTCP
	port := target.Spec.Ports[0]
	mk := func(name, clusterIP string, typ corev1.ServiceType, np int32) *corev1.Service {
		s := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: probeNamespace, Name: name, CreationTimestamp: metav1.NewTime(c.Created)},
			Spec: corev1.ServiceSpec{Type: typ, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				SessionAffinity: corev1.ServiceAffinityNone,
				Ports:           []corev1.ServicePort{{Name: port.Name, Port: 80, Protocol: tcp, TargetPort: port.TargetPort, NodePort: np}}},
		}
		if typ != corev1.ServiceTypeClusterIP {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		es := slice.DeepCopy()
		es.Namespace, es.Name = probeNamespace, name+"-probe"
		es.Labels = map[string]string{discoveryv1.LabelServiceName: name}
		es.OwnerReferences = nil
		out.Objects.Services = append(out.Objects.Services, s)
		out.Objects.EndpointSlices = append(out.Objects.EndpointSlices, es)
		return s
	}
	lb := mk("lb", ip(1), corev1.ServiceTypeLoadBalancer, nodePort(32001))
	ps.lbIP = netip.MustParseAddr("198.51.100.80")
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ps.lbIP.String()}}
	ps.lbPort = 80
	ps.nodePort = uint16(lb.Spec.Ports[0].NodePort)
	sticky := mk("sticky", ip(2), corev1.ServiceTypeClusterIP, 0)
	sticky.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	sticky.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}}
	ps.sticky = netip.MustParseAddr(sticky.Spec.ClusterIP)
	local := mk("local", ip(3), corev1.ServiceTypeNodePort, nodePort(32002))
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	local.Spec.HealthCheckNodePort = nodePort(32100)
	ps.localNodePort = uint16(local.Spec.Ports[0].NodePort)
	ps.notes = append(ps.notes, fmt.Sprintf("probe Services added in namespace %s, backed by %s/%s's endpoints: lb (LoadBalancer %s, NodePort %d), sticky (ClientIP affinity, 10800 s), local (NodePort %d, externalTrafficPolicy Local)",
		probeNamespace, target.Namespace, target.Name, ps.lbIP, ps.nodePort, ps.localNodePort))
	ps.notes = append(ps.notes, fmt.Sprintf("client pod %s/%s on node %s; target Service %s/%s %s", ps.client.Namespace, ps.client.Name, ps.client.Spec.NodeName,
		target.Namespace, target.Name, netip.AddrPortFrom(ps.target.ip, ps.target.port)))
	cluster.ApplyDefaults(&out.Objects)
	return &out, ps, nil
}

// evalFlow runs a flow's first packet through the node in mode m.
func evalFlow(m cluster.ProxyMode, node *dataplane.Node, p probe) (Outcome, error) {
	iif := p.iif
	if iif == "" && !p.local {
		if r, err := node.Net.Lookup(p.src, route.LookupOptions{}); err == nil {
			iif = r.Dev
		}
	}
	var o Outcome
	if p.affinity {
		o.Affinity = FeaturesOf(m).Affinity
	}
	if m == cluster.ProxyNFTables {
		local := trace.LocalAddrsFromStack(node.Net)
		pkt := dpnft.Packet{Src: p.src, Dst: p.dst, Proto: p.proto, SPort: trace.DefaultSPort, DPort: p.port, IIF: iif}
		if p.proto == "icmp" {
			pkt.SPort, pkt.DPort = 0, 0
		}
		if p.local {
			pkt.IIF = ""
		}
		outs, err := node.NFTables.Trace(pkt, local.IsLocal, dpnft.TraceOptions{FromLocal: p.local})
		if err != nil {
			return o, err
		}
		set := map[string]bool{}
		for _, out := range outs {
			o.Verdict = strings.ToUpper(string(out.Verdict))
			o.Delivered = out.Delivered
			if out.Delivered == "forward" {
				o.Delivered = "forwarded"
			}
			if out.DNAT != "" {
				set[out.DNAT] = true
			}
			o.Masquerade = o.Masquerade || out.Masquerade
		}
		if o.Verdict != "ACCEPT" {
			o.Delivered = ""
		}
		o.DNAT = sortedKeys(set)
		return o, nil
	}
	tn, err := trace.NewNode(node.Name, node.IPTables, nil, nil)
	if err != nil {
		return o, err
	}
	tn.Net = node.Net
	if node.IPSets != nil {
		tn.Sets = trace.SetMatcher{Sets: node.IPSets}
	}
	port := p.port
	if p.proto == "icmp" {
		port = 8 // echo request type in the port slot: no kube-proxy rule matches icmp on ports
	}
	res, err := trace.Trace(tn, trace.Request{Src: p.src, Dst: p.dst, Proto: trace.Protocol(p.proto), DPort: port, InIface: iif})
	if err != nil {
		return o, err
	}
	o.Verdict = string(res.Verdict)
	set := map[string]bool{}
	for _, d := range res.DNAT {
		set[d.To] = true
	}
	o.Masquerade = res.Masquerade
	// Where the (translated) packet goes: the routing hop of the path.
	for _, h := range res.Path {
		if h.Route != "" {
			o.Delivered = "forwarded"
			if strings.HasPrefix(h.Route, "local ") {
				o.Delivered = "local"
			}
		}
	}
	if m == cluster.ProxyIPVS && node.IPVS != nil && o.Verdict == "ACCEPT" && o.Delivered == "local" && p.proto != "icmp" {
		// IPVS takes the packet at LOCAL_IN when a virtual server matches; the masquerade
		// mark set on the way (KUBE-MARK-MASQ) makes POSTROUTING masquerade it.
		for _, s := range node.IPVS.Services {
			if s.Addr == p.dst && s.Port == p.port && string(s.Protocol) == p.proto {
				for _, d := range s.Dests {
					set[netip.AddrPortFrom(d.Addr, d.Port).String()] = true
				}
				o.Delivered = "forwarded"
				for _, h := range res.Path {
					if h.Chain == "KUBE-MARK-MASQ" {
						o.Masquerade = true
					}
				}
			}
		}
	}
	if o.Verdict != "ACCEPT" {
		o.Delivered = ""
	}
	o.DNAT = sortedKeys(set)
	return o, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// kubelet's own chains stay on every node whatever the mode.
var kubeletChains = map[string]bool{"KUBE-IPTABLES-HINT": true, "KUBE-KUBELET-CANARY": true, "KUBE-FIREWALL": true}

// leftovers lists what kube-proxy in mode from programmed on the node that mode to does not
// use, with the clean-up commands.
func leftovers(n *dataplane.Node, from, to cluster.ProxyMode) []Leftover {
	var out []Leftover
	auto := to == cluster.ProxyNFTables // nftables mode cleans iptables/IPVS leftovers on start
	if from == cluster.ProxyIPVS {
		var addrs []string
		for _, a := range n.Net.Addrs {
			if a.Dev == ipvs.DummyDevice {
				addrs = append(addrs, a.Prefix.String())
			}
		}
		out = append(out, Leftover{What: "dummy link " + ipvs.DummyDevice + " with every Service IP bound (local routes in table local)",
			Items: addrs, Cleanup: []string{"ip link del " + ipvs.DummyDevice}, Automatic: auto})
		var vs []string
		if n.IPVS != nil {
			for _, s := range n.IPVS.Services {
				vs = append(vs, fmt.Sprintf("%s %s (%d real servers)", strings.ToUpper(string(s.Protocol)), netip.AddrPortFrom(s.Addr, s.Port), len(s.Dests)))
			}
		}
		out = append(out, Leftover{What: "IPVS virtual servers", Items: vs, Cleanup: []string{"ipvsadm -C"}, Automatic: auto})
		if n.IPSets != nil {
			var names, cmds []string
			for _, s := range n.IPSets.Sets {
				names = append(names, s.Name)
				cmds = append(cmds, "ipset destroy "+s.Name)
			}
			out = append(out, Leftover{What: "ipsets (destroy after the iptables rules that reference them are gone)", Items: names, Cleanup: cmds, Automatic: auto})
		}
		out = append(out, Leftover{What: "IPVS sysctls kube-proxy set", Items: []string{"net.ipv4.vs.conntrack=1", "net.ipv4.vs.conn_reuse_mode=0", "net.ipv4.vs.expire_nodest_conn=1", "net.ipv4.vs.expire_quiescent_template=1"},
			Cleanup: []string{"(harmless once IPVS is empty; reset with sysctl -w or reboot)"}, Automatic: false})
	}
	if (from == cluster.ProxyIPTables || from == cluster.ProxyIPVS) && n.IPTables != nil {
		var items, cmds []string
		for _, t := range n.IPTables.Tables {
			var chains []string
			for _, ch := range t.Chains {
				if ch.Builtin {
					for _, r := range ch.Rules {
						if tgt := r.Target; tgt != nil && strings.HasPrefix(tgt.TargetName(), "KUBE-") && !kubeletChains[tgt.TargetName()] {
							spec := strings.TrimSpace(strings.TrimPrefix(r.Text, "-A "+ch.Name))
							cmds = append(cmds, fmt.Sprintf("iptables -t %s -D %s %s", t.Name, ch.Name, spec))
						}
					}
					continue
				}
				if strings.HasPrefix(ch.Name, "KUBE-") && !kubeletChains[ch.Name] {
					chains = append(chains, ch.Name)
					items = append(items, fmt.Sprintf("%s %s (%d rules)", t.Name, ch.Name, len(ch.Rules)))
				}
			}
			for _, c := range chains {
				cmds = append(cmds, fmt.Sprintf("iptables -t %s -F %s", t.Name, c))
			}
			for _, c := range chains {
				cmds = append(cmds, fmt.Sprintf("iptables -t %s -X %s", t.Name, c))
			}
		}
		cmds = append([]string{"kube-proxy --cleanup   # or, by hand:"}, cmds...)
		out = append(out, Leftover{What: "kube-proxy's KUBE-* iptables chains and the jumps to them (kubelet's KUBE-FIREWALL, KUBE-KUBELET-CANARY and KUBE-IPTABLES-HINT stay)",
			Items: items, Cleanup: cmds, Automatic: auto})
		if to != cluster.ProxyNFTables {
			out[len(out)-1].Automatic = false
		}
	}
	if from == cluster.ProxyNFTables && n.NFTables != nil {
		var items []string
		for _, t := range n.NFTables.Tables {
			items = append(items, fmt.Sprintf("table %s %s (%d chains, %d sets/maps)", t.Family, t.Name, len(t.Chains), len(t.Sets)))
		}
		out = append(out, Leftover{What: "kube-proxy's nftables tables", Items: items,
			Cleanup: []string{"nft delete table ip kube-proxy", "nft delete table ip6 kube-proxy"}, Automatic: true})
	}
	return out
}

// Write prints the migration as text or JSON.
func (m *Migration) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kube-proxy %s → %s on cluster %s, node %s\n", m.From, m.To, m.Cluster, m.Node)
	if m.From == cluster.ProxyIPVS {
		b.WriteString("IPVS mode is deprecated since Kubernetes 1.35 (gate off in 1.40, removal planned for 1.43).\n")
	}
	for _, n := range m.Notes {
		b.WriteString("note: " + n + "\n")
	}
	changed := 0
	for _, f := range m.Flows {
		if f.Changed {
			changed++
		}
	}
	fmt.Fprintf(&b, "\nflows: %d of %d change\n", changed, len(m.Flows))
	for _, f := range m.Flows {
		mark := "  same    "
		if f.Changed {
			mark = "  CHANGED "
		}
		fmt.Fprintf(&b, "%s%s (%s)\n", mark, f.Flow, f.Packet)
		fmt.Fprintf(&b, "      %-8s %s\n      %-8s %s\n", m.From, f.From, m.To, f.To)
		if f.Changed && f.Reason != "" {
			fmt.Fprintf(&b, "      why: %s\n", f.Reason)
		}
	}
	b.WriteString("\nleftovers of " + string(m.From) + " mode:\n")
	for _, l := range m.Leftovers {
		auto := "removed automatically when kube-proxy starts in " + string(m.To) + " mode"
		if !l.Automatic {
			auto = "NOT removed automatically"
		}
		fmt.Fprintf(&b, "- %s: %d (%s)\n", l.What, len(l.Items), auto)
		for i, it := range l.Items {
			if i == 5 {
				fmt.Fprintf(&b, "    ... %d more\n", len(l.Items)-5)
				break
			}
			fmt.Fprintf(&b, "    %s\n", it)
		}
		for _, c := range l.Cleanup {
			fmt.Fprintf(&b, "    $ %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
