// Package ipvs renders what kube-proxy's IPVS mode programs on a node for kube-proxy v1.35
// (pkg/proxy/ipvs/proxier.go syncProxyRules and writeIptablesRules, the last maintained
// behaviour): the DOWN, NOARP dummy kube-ipvs0 with a /32 (/128) per bound Service address,
// one IPVS virtual server per ClusterIP, externalIP, LoadBalancer ingress IP and node
// address × NodePort (rr by default, ClientIP affinity as persistence, mh with the
// mh-port flag), the ipsets kube-proxy keeps, the iptables-restore input it writes (same
// mechanism as iptables mode but a constant number of rules matching those ipsets), the
// chain jumps it ensures, and the sysctls it sets.
//
// IPVS mode is deprecated since kube-proxy 1.35 (KEP-5495); the renderer says so in
// Result.Notes and in WriteSections.
//
// Where kube-proxy iterates Go maps (services, endpoints, ipset entries) the order is
// random upstream; knet uses the shared render/kubeproxy order (service port name) and
// adds real servers sorted by IP:port, so output is deterministic.
package ipvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"github.com/knet-dev/knet/cluster"
	dpipset "github.com/knet-dev/knet/dataplane/ipset"
	dpipvs "github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// DummyDevice is kube-proxy's defaultDummyDevice.
const DummyDevice = "kube-ipvs0"

// Deprecation is the notice every IPVS rendering carries.
const Deprecation = "kube-proxy IPVS mode is deprecated since v1.35 (KEP-5495); knet renders its last maintained behaviour"

// Options mirror the KubeProxyConfiguration fields IPVS mode reads. Zero values take the
// upstream defaults noted per field.
type Options struct {
	// NodeName is this node's name (endpoints on it are local).
	NodeName string
	// NodeIPs are the node's addresses, primary first; the first of the family is
	// kube-proxy's nodeIP (LoadBalancer source ranges "allow from node").
	NodeIPs []netip.Addr
	// LocalAddresses are every address on the node's interfaces except kube-ipvs0 (as
	// GetAllLocalAddressesExcept sees them, including CNI addresses such as tunl0 or
	// flannel.1): NodePort virtual servers are created on each, and externalIPs / LB IPs
	// found here are not bound to kube-ipvs0. Loopback and IPv6 link-local addresses are
	// ignored. Default: NodeIPs.
	LocalAddresses []netip.Addr
	// NodeZone is the node's topology zone label (topology hints).
	NodeZone string
	// Family is IPv4 (default) or IPv6.
	Family kubeproxy.Family
	// LocalDetector tells pod traffic apart (default None).
	LocalDetector kubeproxy.LocalDetector
	// MasqueradeAll is iptables.masqueradeAll; MasqueradeBit iptables.masqueradeBit (14).
	MasqueradeAll bool
	MasqueradeBit int
	// RandomFully adds --random-fully to MASQUERADE (modern iptables; default true via
	// DefaultOptions).
	RandomFully bool
	// Scheduler is ipvs.scheduler (default rr).
	Scheduler dpipvs.Scheduler
	// StrictARP is ipvs.strictARP (arp_ignore=1, arp_announce=2).
	StrictARP bool
	// TCPTimeout, TCPFinTimeout, UDPTimeout are ipvs.tcpTimeout etc.: non-zero values are
	// applied as `ipvsadm --set`; zero keeps the kernel's (900 s, 120 s, 300 s).
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
	// ExcludeCIDRs is ipvs.excludeCIDRs (only affects cleanup of foreign virtual servers).
	ExcludeCIDRs []netip.Prefix
	// NodePortAddresses restricts NodePort virtual servers to local addresses in these
	// prefixes (nil: every local address).
	NodePortAddresses []netip.Prefix
	// KernelVersion decides conn_reuse_mode: kube-proxy sets it to 0 only on kernels older
	// than 5.9 (default "6.1").
	KernelVersion string
	// Version is the kube-proxy version mirrored (default kubeproxy.DefaultVersion).
	Version string
}

// DefaultOptions returns kube-proxy's defaults for a node.
func DefaultOptions(nodeName string, nodeIPs ...netip.Addr) Options {
	return Options{NodeName: nodeName, NodeIPs: nodeIPs, Family: kubeproxy.IPv4,
		LocalDetector: kubeproxy.LocalDetector{Mode: kubeproxy.LocalNone},
		MasqueradeBit: iptables.DefaultMasqueradeBit, RandomFully: true,
		Scheduler: dpipvs.RoundRobin, KernelVersion: "6.1", Version: kubeproxy.DefaultVersion}
}

// OptionsFromConfig builds Options from a KubeProxyConfiguration (ipvs.scheduler,
// ipvs.strictARP, ipvs.tcpTimeout, ipvs.tcpFinTimeout, ipvs.udpTimeout, ipvs.excludeCIDRs,
// plus the fields iptables mode reads too: masqueradeAll, masqueradeBit, clusterCIDR /
// detectLocalMode, nodePortAddresses) and the Node object.
func OptionsFromConfig(cfg *kubeproxyconfigv1alpha1.KubeProxyConfiguration, node *corev1.Node, nodeName string, family kubeproxy.Family) (Options, error) {
	if cfg == nil {
		cfg = &kubeproxyconfigv1alpha1.KubeProxyConfiguration{}
	}
	if cfg.Mode != "" && cfg.Mode != "ipvs" {
		return Options{}, fmt.Errorf("configuration mode is %q, not ipvs", cfg.Mode)
	}
	// The shared fields are read exactly as iptables mode reads them.
	shared := cfg.DeepCopy()
	shared.Mode = "iptables"
	io, err := iptables.OptionsFromConfig(shared, node, nodeName, family)
	if err != nil {
		return Options{}, err
	}
	o := DefaultOptions(io.NodeName, io.NodeIPs...)
	o.Family, o.NodeZone, o.LocalDetector = io.Family, io.NodeZone, io.LocalDetector
	o.MasqueradeAll, o.MasqueradeBit = io.MasqueradeAll, io.MasqueradeBit
	o.NodePortAddresses = io.NodePortAddresses
	if cfg.IPVS.Scheduler != "" {
		s, err := dpipvs.ParseScheduler(cfg.IPVS.Scheduler)
		if err != nil {
			return o, fmt.Errorf("ipvs.scheduler: %w", err)
		}
		o.Scheduler = s
	}
	o.StrictARP = cfg.IPVS.StrictARP
	o.TCPTimeout, o.TCPFinTimeout, o.UDPTimeout = cfg.IPVS.TCPTimeout.Duration, cfg.IPVS.TCPFinTimeout.Duration, cfg.IPVS.UDPTimeout.Duration
	for _, s := range cfg.IPVS.ExcludeCIDRs {
		p, ok := kubeproxy.ParsePrefixSloppy(strings.TrimSpace(s))
		if !ok {
			return o, fmt.Errorf("ipvs.excludeCIDRs: invalid CIDR %q", s)
		}
		o.ExcludeCIDRs = append(o.ExcludeCIDRs, p)
	}
	return o, nil
}

func (o Options) normalized() (Options, error) {
	if o.Family == "" {
		o.Family = kubeproxy.IPv4
	}
	if o.Family != kubeproxy.IPv4 && o.Family != kubeproxy.IPv6 {
		return o, fmt.Errorf("unknown IP family %q (want IPv4 or IPv6)", o.Family)
	}
	if o.MasqueradeBit == 0 {
		o.MasqueradeBit = iptables.DefaultMasqueradeBit
	}
	if o.MasqueradeBit < 0 || o.MasqueradeBit > 31 {
		return o, fmt.Errorf("masqueradeBit %d out of range 0..31", o.MasqueradeBit)
	}
	if o.Scheduler == "" {
		o.Scheduler = dpipvs.RoundRobin
	}
	if _, err := dpipvs.ParseScheduler(string(o.Scheduler)); err != nil {
		return o, err
	}
	if o.LocalDetector.Mode == "" {
		o.LocalDetector.Mode = kubeproxy.LocalNone
	}
	if o.KernelVersion == "" {
		o.KernelVersion = "6.1"
	}
	if o.Version == "" {
		o.Version = kubeproxy.DefaultVersion
	}
	return o, nil
}

// Jump is a rule kube-proxy ensures with `iptables -t TABLE -I CHAIN 1 RULE`, in the order
// it ensures them (each lands at position 1, so the last ensured comes first).
type Jump struct {
	Table, Chain, Rule string
}

// Result is what kube-proxy's first full IPVS-mode sync programs.
type Result struct {
	IPVS   *dpipvs.State
	IPSets *dpipset.Sets
	// Restore is the iptables-restore input (run with --noflush).
	Restore []byte
	// Jumps are the chain jumps ensured outside the restore.
	Jumps []Jump
	// DummyAddrs are the addresses bound to kube-ipvs0, sorted.
	DummyAddrs []netip.Prefix
	// Sysctls are set by kube-proxy, keyed by their /proc/sys path below net/
	// ("ipv4/vs/conntrack"), as dataplane.Node.Sysctls.
	Sysctls map[string]string
	// Notes are human-facing remarks (the deprecation notice first).
	Notes []string
}

// ipset names and comments (pkg/proxy/ipvs/ipset.go).
const (
	setLoopBack       = "KUBE-LOOP-BACK"
	setClusterIP      = "KUBE-CLUSTER-IP"
	setExternalIP     = "KUBE-EXTERNAL-IP"
	setExternalIPLoc  = "KUBE-EXTERNAL-IP-LOCAL"
	setLB             = "KUBE-LOAD-BALANCER"
	setLBFW           = "KUBE-LOAD-BALANCER-FW"
	setLBLocal        = "KUBE-LOAD-BALANCER-LOCAL"
	setLBSourceIP     = "KUBE-LOAD-BALANCER-SOURCE-IP"
	setLBSourceCIDR   = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	setNodePortTCP    = "KUBE-NODE-PORT-TCP"
	setNodePortLocTCP = "KUBE-NODE-PORT-LOCAL-TCP"
	setNodePortUDP    = "KUBE-NODE-PORT-UDP"
	setNodePortLocUDP = "KUBE-NODE-PORT-LOCAL-UDP"
	setNodePortSCTP   = "KUBE-NODE-PORT-SCTP-HASH"
	setNodePortLocSC  = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	setHealthCheck    = "KUBE-HEALTH-CHECK-NODE-PORT"
	setIPVS           = "KUBE-IPVS-IPS"
)

// SetInfo is one ipset kube-proxy's IPVS mode keeps (ipsetInfo).
type SetInfo struct {
	Name    string
	Type    dpipset.Type
	Comment string
}

// SetInfos lists the ipsets in kube-proxy's ipsetInfo order, with their comments.
func SetInfos() []SetInfo {
	return []SetInfo{
		{setLoopBack, dpipset.HashIPPortIP, "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
		{setClusterIP, dpipset.HashIPPort, "Kubernetes service cluster ip + port for masquerade purpose"},
		{setExternalIP, dpipset.HashIPPort, "Kubernetes service external ip + port for masquerade and filter purpose"},
		{setExternalIPLoc, dpipset.HashIPPort, "Kubernetes service external ip + port with externalTrafficPolicy=local"},
		{setLB, dpipset.HashIPPort, "Kubernetes service lb portal"},
		{setLBFW, dpipset.HashIPPort, "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
		{setLBLocal, dpipset.HashIPPort, "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
		{setLBSourceIP, dpipset.HashIPPortIP, "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
		{setLBSourceCIDR, dpipset.HashIPPortNet, "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
		{setNodePortTCP, dpipset.BitmapPort, "Kubernetes nodeport TCP port for masquerade purpose"},
		{setNodePortLocTCP, dpipset.BitmapPort, "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
		{setNodePortUDP, dpipset.BitmapPort, "Kubernetes nodeport UDP port for masquerade purpose"},
		{setNodePortLocUDP, dpipset.BitmapPort, "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
		{setNodePortSCTP, dpipset.HashIPPort, "Kubernetes nodeport SCTP port for masquerade purpose"},
		{setNodePortLocSC, dpipset.HashIPPort, "Kubernetes nodeport SCTP port with externalTrafficPolicy=local"},
		{setHealthCheck, dpipset.BitmapPort, "Kubernetes health check node port"},
		{setIPVS, dpipset.HashIP, "Addresses on the ipvs interface"},
	}
}

// SetName returns a set's name for the family: "KUBE-" becomes "KUBE-6-" for IPv6,
// truncated to 31 characters.
func SetName(base string, fam kubeproxy.Family) string {
	if fam != kubeproxy.IPv6 {
		return base
	}
	n := strings.Replace(base, "KUBE-", "KUBE-6-", 1)
	if len(n) > 31 {
		n = n[:31]
	}
	return n
}

// renderer holds one sync's state.
type renderer struct {
	o        Options
	st       *dpipvs.State
	sets     *dpipset.Sets
	names    map[string]string // base -> family name
	comments map[string]string // base -> comment
	bound    map[netip.Addr]bool
	local    map[netip.Addr]bool
	nodeIP   netip.Addr
	lbNoNode []entry
	notes    []string
}

type entry struct {
	ip    netip.Addr
	proto string
	port  int
}

// Render returns what kube-proxy's IPVS mode programs on opts.NodeName for objs.
func Render(objs cluster.Objects, opts Options) (*Result, error) {
	o, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	r := &renderer{o: o, st: dpipvs.New(), sets: dpipset.New(), names: map[string]string{},
		comments: map[string]string{}, bound: map[netip.Addr]bool{}, local: map[netip.Addr]bool{}}
	r.st.Sysctls.ExpireNodestConn = true
	r.st.Sysctls.ExpireQuiescentTemplate = true
	if o.TCPTimeout > 0 {
		r.st.Timeouts.TCP = o.TCPTimeout
	}
	if o.TCPFinTimeout > 0 {
		r.st.Timeouts.TCPFin = o.TCPFinTimeout
	}
	if o.UDPTimeout > 0 {
		r.st.Timeouts.UDP = o.UDPTimeout
	}
	fam := o.Family
	for _, ip := range o.NodeIPs {
		if kubeproxy.FamilyOf(ip) == fam {
			r.nodeIP = ip
			break
		}
	}
	locals := o.LocalAddresses
	if len(locals) == 0 {
		locals = o.NodeIPs
	}
	for _, a := range locals {
		a = a.Unmap()
		if kubeproxy.FamilyOf(a) != fam || a.IsLoopback() || (a.Is6() && a.IsLinkLocalUnicast()) {
			continue
		}
		r.local[a] = true
	}
	for _, si := range SetInfos() {
		name := SetName(si.Name, fam)
		r.names[si.Name], r.comments[si.Name] = name, si.Comment
		s := &dpipset.Set{Name: name, Type: si.Type}
		switch si.Type {
		case dpipset.BitmapPort:
			s.RangeFrom, s.RangeTo = 0, 65535
		default:
			s.Family, s.HashSize, s.MaxElem = dpipset.Inet, 1024, 65536
			if fam == kubeproxy.IPv6 {
				s.Family = dpipset.Inet6
			}
		}
		if err := r.sets.Create(s); err != nil {
			return nil, err
		}
	}

	ports := kubeproxy.ServicePorts(objs.Services, fam)
	eps := kubeproxy.Endpoints(objs.EndpointSlices, ports, fam, o.NodeName)
	var nodeIPs []netip.Addr
	for _, sp := range ports {
		if sp.NodePort != 0 {
			nodeIPs = r.nodePortIPs()
			break
		}
	}
	for _, sp := range ports {
		if err := r.servicePort(sp, eps[sp], nodeIPs); err != nil {
			return nil, err
		}
	}
	// KUBE-IPVS-IPS holds every bound address.
	var dummy []netip.Prefix
	for a := range r.bound {
		dummy = append(dummy, netip.PrefixFrom(a, a.BitLen()))
	}
	sort.Slice(dummy, func(i, j int) bool { return dummy[i].Addr().Less(dummy[j].Addr()) })
	for _, p := range dummy {
		r.add(setIPVS, dpipset.Member{IP: p.Addr()})
	}
	restore := r.restore()
	r.countReferences(restore)
	res := &Result{IPVS: r.st, IPSets: r.sets, Restore: restore, Jumps: jumps(), DummyAddrs: dummy,
		Sysctls: r.sysctls(), Notes: append([]string{Deprecation}, r.notes...)}
	return res, nil
}

// nodePortIPs is the node-address list NodePort virtual servers are created on, sorted.
func (r *renderer) nodePortIPs() []netip.Addr {
	var out []netip.Addr
	for a := range r.local {
		if len(r.o.NodePortAddresses) > 0 {
			ok := false
			for _, p := range r.o.NodePortAddresses {
				if p.Contains(a) {
					ok = true
				}
			}
			if !ok {
				continue
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func (r *renderer) add(base string, m dpipset.Member) {
	m.Timeout = -1
	name := r.names[base]
	if err := r.sets.Add(name, m); err != nil && !errors.Is(err, dpipset.ErrExist) { // activeEntries is a set
		r.notes = append(r.notes, fmt.Sprintf("ipset %s: %v (kube-proxy logs \"Error adding entry to ipset\")", name, err))
	}
}

func protoOf(sp *kubeproxy.ServicePort) dpipvs.Protocol { return dpipvs.Protocol(sp.Protocol) }

// virtualServer is syncService + syncEndpoint for one address.
func (r *renderer) virtualServer(sp *kubeproxy.ServicePort, addr netip.Addr, port int, bind, onlyLocal bool, eps []*kubeproxy.Endpoint) {
	svc := r.st.Service(protoOf(sp), addr, uint16(port))
	if svc == nil {
		svc = &dpipvs.Service{Protocol: protoOf(sp), Addr: addr, Port: uint16(port), Scheduler: r.o.Scheduler}
		if sp.AffinityClientIP {
			svc.Flags |= dpipvs.FlagPersistent
			svc.Timeout = uint32(sp.StickySeconds)
		}
		if r.o.Scheduler == dpipvs.MaglevHashing {
			svc.Flags |= dpipvs.FlagMHPort // utilipvs.FlagSourceHash = 0x10 = IP_VS_SVC_F_SCHED2
		}
		if err := r.st.AddService(svc); err != nil {
			r.notes = append(r.notes, fmt.Sprintf("%s: %v", sp.NameString, err))
			return
		}
	} else {
		// another Service port already made this virtual server: kube-proxy updates it and
		// syncs this port's endpoints into it, removing the others.
		r.notes = append(r.notes, fmt.Sprintf("%s: virtual server %s is shared with another Service; the last one synced wins", sp.NameString, svc))
		for len(svc.Dests) > 0 {
			_ = r.st.DelDest(svc, svc.Dests[0])
		}
	}
	if bind {
		r.bound[addr] = true
	}
	cluster, local, _, _ := kubeproxy.CategorizeEndpoints(eps, sp, r.o.NodeName, r.o.NodeZone)
	use := cluster
	if onlyLocal && len(local) > 0 {
		use = local
	}
	seen := map[string]bool{}
	var list []*kubeproxy.Endpoint
	for _, e := range use {
		if !seen[e.String()] {
			seen[e.String()] = true
			list = append(list, e)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].String() < list[j].String() })
	for _, e := range list {
		_ = r.st.AddDest(svc, &dpipvs.Dest{Addr: e.IP, Port: uint16(e.Port), Weight: 1, Forward: dpipvs.Masq})
	}
}

func (r *renderer) servicePort(sp *kubeproxy.ServicePort, eps []*kubeproxy.Endpoint, nodeIPs []netip.Addr) error {
	proto := sp.Protocol
	// Hairpin: local endpoints into KUBE-LOOP-BACK.
	for _, e := range eps {
		if e.Local && e.IP.IsValid() && e.Port != 0 {
			r.add(setLoopBack, dpipset.Member{IP: e.IP, Proto: proto, Port: uint16(e.Port), IP2: e.IP})
		}
	}
	r.add(setClusterIP, dpipset.Member{IP: sp.ClusterIP, Proto: proto, Port: uint16(sp.Port)})
	r.virtualServer(sp, sp.ClusterIP, sp.Port, true, sp.InternalPolicyLocal, eps)

	for _, ext := range sp.ExternalIPs {
		if sp.ExternalPolicyLocal {
			r.add(setExternalIPLoc, dpipset.Member{IP: ext, Proto: proto, Port: uint16(sp.Port)})
		} else {
			r.add(setExternalIP, dpipset.Member{IP: ext, Proto: proto, Port: uint16(sp.Port)})
		}
		r.virtualServer(sp, ext, sp.Port, !r.local[ext], sp.ExternalPolicyLocal, eps)
	}

	for _, ing := range sp.LoadBalancerVIPs {
		m := dpipset.Member{IP: ing, Proto: proto, Port: uint16(sp.Port)}
		r.add(setLB, m)
		if sp.ExternalPolicyLocal {
			r.add(setLBLocal, m)
		}
		if len(sp.SourceRanges) != 0 {
			r.add(setLBFW, m)
			allowFromNode := false
			for _, cidr := range sp.SourceRanges {
				r.add(setLBSourceCIDR, dpipset.Member{IP: ing, Proto: proto, Port: uint16(sp.Port), Net: cidr})
				if r.nodeIP.IsValid() && cidr.Contains(r.nodeIP) {
					allowFromNode = true
				}
			}
			if allowFromNode {
				r.add(setLBSourceIP, dpipset.Member{IP: ing, Proto: proto, Port: uint16(sp.Port), IP2: ing})
			} else {
				r.lbNoNode = append(r.lbNoNode, entry{ip: ing, proto: proto, port: sp.Port})
			}
		}
		r.virtualServer(sp, ing, sp.Port, !r.local[ing], sp.ExternalPolicyLocal, eps)
	}

	if sp.NodePort != 0 && len(nodeIPs) > 0 {
		var base, localBase string
		var members []dpipset.Member
		switch proto {
		case "tcp":
			base, localBase = setNodePortTCP, setNodePortLocTCP
			members = []dpipset.Member{{Port: uint16(sp.NodePort)}}
		case "udp":
			base, localBase = setNodePortUDP, setNodePortLocUDP
			members = []dpipset.Member{{Port: uint16(sp.NodePort)}}
		case "sctp":
			base, localBase = setNodePortSCTP, setNodePortLocSC
			for _, ip := range nodeIPs {
				members = append(members, dpipset.Member{IP: ip, Proto: proto, Port: uint16(sp.NodePort)})
			}
		}
		for _, m := range members {
			r.add(base, m)
		}
		if sp.ExternalPolicyLocal {
			for _, m := range members {
				r.add(localBase, m)
			}
		}
		for _, ip := range nodeIPs {
			r.virtualServer(sp, ip, sp.NodePort, false, sp.ExternalPolicyLocal, eps)
		}
	}
	if sp.HealthCheckNodePort != 0 {
		r.add(setHealthCheck, dpipset.Member{Port: uint16(sp.HealthCheckNodePort)})
	}
	return nil
}

func (r *renderer) empty(base string) bool { return len(r.sets.Get(r.names[base]).Members) == 0 }

func (r *renderer) comment(base string) string { return `"` + r.comments[base] + `"` }

// ipsetRules is ipsetWithIptablesChain.
var ipsetRules = []struct {
	base, table, from, to, match, proto string
}{
	{setLoopBack, "nat", "KUBE-POSTROUTING", "MASQUERADE", "dst,dst,src", ""},
	{setLB, "nat", "KUBE-SERVICES", "KUBE-LOAD-BALANCER", "dst,dst", ""},
	{setLBLocal, "nat", "KUBE-LOAD-BALANCER", "RETURN", "dst,dst", ""},
	{setNodePortLocTCP, "nat", "KUBE-NODE-PORT", "RETURN", "dst", "tcp"},
	{setNodePortTCP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "tcp"},
	{setNodePortLocUDP, "nat", "KUBE-NODE-PORT", "RETURN", "dst", "udp"},
	{setNodePortUDP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst", "udp"},
	{setNodePortLocSC, "nat", "KUBE-NODE-PORT", "RETURN", "dst,dst", "sctp"},
	{setNodePortSCTP, "nat", "KUBE-NODE-PORT", "KUBE-MARK-MASQ", "dst,dst", "sctp"},
	{setLBFW, "filter", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL", "dst,dst", ""},
	{setLBSourceCIDR, "filter", "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src", ""},
	{setLBSourceIP, "filter", "KUBE-SOURCE-RANGES-FIREWALL", "RETURN", "dst,dst,src", ""},
}

var natChains = []string{"KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"}
var filterChains = []string{"KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL", "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER"}

// jumps is iptablesJumpChain.
func jumps() []Jump {
	j := func(table, from, to, comment string) Jump {
		return Jump{Table: table, Chain: from, Rule: fmt.Sprintf("-m comment --comment %q -j %s", comment, to)}
	}
	return []Jump{
		j("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
		j("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals"),
		j("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
		j("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules"),
		j("filter", "INPUT", "KUBE-NODE-PORT", "kubernetes health check rules"),
		j("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules"),
		j("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules"),
		j("filter", "INPUT", "KUBE-IPVS-FILTER", "kubernetes ipvs access filter"),
		j("filter", "OUTPUT", "KUBE-IPVS-OUT-FILTER", "kubernetes ipvs access filter"),
	}
}

type lines struct{ b strings.Builder }

func (l *lines) w(words ...string) {
	l.b.WriteString(strings.Join(words, " "))
	l.b.WriteByte('\n')
}

// restore is writeIptablesRules plus the chain lines: nat chains, nat rules, filter chains,
// filter rules.
func (r *renderer) restore() []byte {
	mark := fmt.Sprintf("%#08x", 1<<uint(r.o.MasqueradeBit))
	var nc, nr, fc, fr lines
	nc.w("*nat")
	fc.w("*filter")
	for _, c := range natChains {
		nc.w(":" + c + " - [0:0]")
	}
	for _, c := range filterChains {
		fc.w(":" + c + " - [0:0]")
	}
	lo := "127.0.0.0/8"
	if r.o.Family == kubeproxy.IPv6 {
		lo = "::1/128"
	}
	nr.w("-A", "KUBE-SERVICES", "-s", lo, "-j", "RETURN")
	for _, s := range ipsetRules {
		if r.empty(s.base) {
			continue
		}
		args := []string{"-A", s.from}
		if s.proto != "" {
			args = append(args, "-p", s.proto)
		}
		args = append(args, "-m", "comment", "--comment", r.comment(s.base), "-m", "set", "--match-set", r.names[s.base], s.match, "-j", s.to)
		if s.table == "filter" {
			fr.w(args...)
		} else {
			nr.w(args...)
		}
	}
	if !r.empty(setClusterIP) {
		args := []string{"-A", "KUBE-SERVICES", "-m", "comment", "--comment", r.comment(setClusterIP), "-m", "set", "--match-set", r.names[setClusterIP]}
		switch {
		case r.o.MasqueradeAll:
			nr.w(append(args, "dst,dst", "-j", "KUBE-MARK-MASQ")...)
		case r.o.LocalDetector.IsImplemented():
			a := append(args, "dst,dst")
			a = append(a, r.o.LocalDetector.IfNotLocal()...)
			nr.w(append(a, "-j", "KUBE-MARK-MASQ")...)
		default:
			nr.w(append(args, "src,dst", "-j", "KUBE-MARK-MASQ")...)
		}
	}
	externalIPRules := func(args []string) {
		a := append(append([]string(nil), args...), "-m", "physdev", "!", "--physdev-is-in", "-m", "addrtype", "!", "--src-type", "LOCAL", "-j", "ACCEPT")
		nr.w(a...)
		b := append(append([]string(nil), args...), "-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT")
		nr.w(b...)
	}
	if !r.empty(setExternalIP) {
		args := []string{"-A", "KUBE-SERVICES", "-m", "comment", "--comment", r.comment(setExternalIP), "-m", "set", "--match-set", r.names[setExternalIP], "dst,dst"}
		nr.w(append(append([]string(nil), args...), "-j", "KUBE-MARK-MASQ")...)
		externalIPRules(args)
	}
	if !r.empty(setExternalIPLoc) {
		args := []string{"-A", "KUBE-SERVICES", "-m", "comment", "--comment", r.comment(setExternalIPLoc), "-m", "set", "--match-set", r.names[setExternalIPLoc], "dst,dst"}
		externalIPRules(args)
	}
	nr.w("-A", "KUBE-SERVICES", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODE-PORT")
	nr.w("-A", "KUBE-LOAD-BALANCER", "-j", "KUBE-MARK-MASQ")
	fr.w("-A", "KUBE-SOURCE-RANGES-FIREWALL", "-j", "DROP")
	for _, e := range r.lbNoNode {
		fr.w("-A", "KUBE-IPVS-OUT-FILTER", "-s", e.ip.String(), "-m", "ipvs", "--vaddr", e.ip.String(), "--vproto", e.proto, "--vport", strconv.Itoa(e.port), "-j", "DROP")
	}
	for _, base := range []string{setClusterIP, setLB} {
		if !r.empty(base) {
			nr.w("-A", "KUBE-SERVICES", "-m", "set", "--match-set", r.names[base], "dst,dst", "-j", "ACCEPT")
		}
	}
	fr.w("-A", "KUBE-FORWARD", "-m", "comment", "--comment", `"kubernetes forwarding rules"`, "-m", "mark", "--mark", mark+"/"+mark, "-j", "ACCEPT")
	fr.w("-A", "KUBE-FORWARD", "-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	fr.w("-A", "KUBE-NODE-PORT", "-m", "comment", "--comment", r.comment(setHealthCheck), "-m", "set", "--match-set", r.names[setHealthCheck], "dst", "-j", "ACCEPT")
	for _, base := range []string{setLB, setClusterIP, setExternalIP, setExternalIPLoc} {
		fr.w("-A", "KUBE-IPVS-FILTER", "-m", "set", "--match-set", r.names[base], "dst,dst", "-j", "RETURN")
	}
	fr.w("-A", "KUBE-IPVS-FILTER", "-m", "set", "--match-set", r.names[setHealthCheck], "dst", "-j", "RETURN")
	fr.w("-A", "KUBE-IPVS-FILTER", "-m", "conntrack", "--ctstate", "NEW", "-m", "set", "--match-set", r.names[setIPVS], "dst", "-j", "REJECT")
	nr.w("-A", "KUBE-POSTROUTING", "-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN")
	nr.w("-A", "KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", mark)
	masq := []string{"-A", "KUBE-POSTROUTING", "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE"}
	if r.o.RandomFully {
		masq = append(masq, "--random-fully")
	}
	nr.w(masq...)
	nr.w("-A", "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", mark)
	fr.w("COMMIT")
	nr.w("COMMIT")
	return []byte(nc.b.String() + nr.b.String() + fc.b.String() + fr.b.String())
}

// countReferences sets each ipset's References to the number of restore rules using it.
func (r *renderer) countReferences(restore []byte) {
	for _, line := range strings.Split(string(restore), "\n") {
		i := strings.Index(line, "--match-set ")
		if i < 0 {
			continue
		}
		name := strings.Fields(line[i+len("--match-set "):])[0]
		if s := r.sets.Get(name); s != nil {
			s.References++
		}
	}
}

func kernelAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	maj, _ := strconv.Atoi(parts[0])
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return maj > major || (maj == major && mi >= minor)
}

// sysctls is what NewProxier ensures.
func (r *renderer) sysctls() map[string]string {
	s := map[string]string{
		"ipv4/vs/conntrack":                 "1",
		"ipv4/vs/expire_nodest_conn":        "1",
		"ipv4/vs/expire_quiescent_template": "1",
		"ipv4/ip_forward":                   "1",
	}
	if !kernelAtLeast(r.o.KernelVersion, 5, 9) && kernelAtLeast(r.o.KernelVersion, 4, 1) {
		s["ipv4/vs/conn_reuse_mode"] = "0"
	}
	if r.o.StrictARP {
		s["ipv4/conf/all/arp_ignore"] = "1"
		s["ipv4/conf/all/arp_announce"] = "2"
	}
	return s
}

// ApplyDummy adds kube-ipvs0 (dummy, DOWN, BROADCAST,NOARP, as netlink.LinkAdd creates it)
// and its addresses to a routing stack, as EnsureDummyDevice and EnsureAddressBind do.
// The kernel gives the dummy a random MAC; knet derives a stable locally administered one
// from the node name.
// Equivalent to: `ip link add kube-ipvs0 type dummy; ip addr add VIP/32 dev kube-ipvs0`.
func ApplyDummy(s *route.Stack, res *Result, nodeName string) error {
	if s.LinkByName(DummyDevice) == nil {
		h := uint32(2166136261)
		for _, c := range []byte(nodeName) {
			h = (h ^ uint32(c)) * 16777619
		}
		mac := net.HardwareAddr{0x5a, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h), 0x0d}
		l := &route.Link{Name: DummyDevice, Kind: route.KindDummy, Flags: route.FlagBroadcast | route.FlagNoARP,
			MTU: 1500, Qdisc: "noop", OperState: route.OperDown, Group: "default", TxQLen: 1000,
			LinkType: "ether", HardwareAddr: mac, Broadcast: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		if err := s.LinkAdd(l); err != nil {
			return fmt.Errorf("kube-ipvs0: %w", err)
		}
	}
	for _, p := range res.DummyAddrs {
		a := &route.Addr{Dev: DummyDevice, Prefix: p, Scope: route.ScopeUniverse}
		if p.Addr().Is4() {
			a.Broadcast = p.Addr() // netlink v1.1 computes brd = ip | ^mask, the VIP itself
		}
		if err := s.AddrAdd(a); err != nil {
			return fmt.Errorf("kube-ipvs0: %w", err)
		}
	}
	return nil
}
