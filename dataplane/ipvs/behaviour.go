package ipvs

// Hook is a netfilter hook at which IPVS handles packets (ip_vs_ops4 in ip_vs_core.c).
type Hook string

// Where IPVS takes packets.
const (
	// HookLocalIn is NF_INET_LOCAL_IN: traffic from other hosts and pods to a virtual
	// address that is local to the node. kube-proxy binds every ClusterIP, externalIP and
	// LoadBalancer IP to kube-ipvs0, so the routing decision delivers them locally and IPVS
	// catches them here (after the filter INPUT chains, before nat INPUT), having passed the
	// nat PREROUTING chains (KUBE-SERVICES) on the way in.
	HookLocalIn Hook = "LOCAL_IN"
	// HookLocalOut is NF_INET_LOCAL_OUT: node-local clients (host-network processes)
	// connecting to a virtual service, after the nat OUTPUT chains.
	HookLocalOut Hook = "LOCAL_OUT"
	// HookForward is NF_INET_FORWARD: replies from NAT real servers routed through the node
	// are de-NATed here.
	HookForward Hook = "FORWARD"
)

// HookOp is one IPVS netfilter hook function with its priority (lower runs first; the
// iptables tables sit at filter 0, nat DNAT -100, nat SNAT 100, mangle -150, raw -300).
type HookOp struct {
	Hook     Hook   `json:"hook"`
	Priority int    `json:"priority"`
	Func     string `json:"func"`
	What     string `json:"what"`
}

// HookOps lists IPVS's IPv4 hooks in registration order (Linux 6.x ip_vs_ops4).
func HookOps() []HookOp {
	return []HookOp{
		{HookLocalIn, 98, "ip_vs_reply4", "NF_IP_PRI_NAT_SRC-2: de-NAT replies of NAT connections delivered locally"},
		{HookLocalIn, 99, "ip_vs_remote_request4", "NF_IP_PRI_NAT_SRC-1: schedule new connections to a local VIP and forward existing ones (after filter INPUT)"},
		{HookLocalOut, -99, "ip_vs_local_reply4", "NF_IP_PRI_NAT_DST+1: de-NAT replies of local real servers"},
		{HookLocalOut, -98, "ip_vs_local_request4", "NF_IP_PRI_NAT_DST+2: schedule connections from local processes (after nat OUTPUT)"},
		{HookForward, 99, "ip_vs_forward_icmp", "ICMP errors for IPVS connections"},
		{HookForward, 100, "ip_vs_reply4", "de-NAT replies of NAT connections routed through the node"},
	}
}

// Behaviour is one way kube-proxy's IPVS mode behaves differently from iptables mode, as
// data a tracer or explainer can report.
type Behaviour struct {
	ID       string `json:"id"`
	Summary  string `json:"summary"`
	IPTables string `json:"iptables"`
	IPVS     string `json:"ipvs"`
	// Source is where the behaviour comes from (kernel function, kube-proxy code, issue).
	Source string `json:"source"`
}

// Behaviours lists the differences between iptables and IPVS mode a trace must respect,
// for kube-proxy v1.35 on Linux 6.x.
func Behaviours() []Behaviour {
	return []Behaviour{
		{ID: "vip-is-local", Summary: "Service IPs are local addresses",
			IPTables: "ClusterIPs exist only in rules; no interface has them",
			IPVS:     "every ClusterIP, externalIP and LB IP is a /32 on the DOWN dummy kube-ipvs0, so `ip route show table local` has a local route for it and the packet is delivered locally, where IPVS takes it at LOCAL_IN",
			Source:   "pkg/proxy/ipvs/proxier.go syncService/EnsureAddressBind"},
		{ID: "other-ports", Summary: "a ClusterIP on a port with no Service",
			IPTables: "no rule matches; the packet follows the routes (usually times out)",
			IPVS:     "IPVS answers only configured ports; the VIP is local, so a NEW connection to another port is REJECTed by KUBE-IPVS-FILTER (`-m set --match-set KUBE-IPVS-IPS dst -j REJECT`); without that rule (kube-proxy < 1.22) it reaches host sockets bound to 0.0.0.0 or gets a TCP RST",
			Source:   "kubernetes#72236; pkg/proxy/ipvs/proxier.go writeIptablesRules"},
		{ID: "ping", Summary: "ping to a ClusterIP",
			IPTables: "no reply (nothing DNATs ICMP echo; the address is not local)",
			IPVS:     "ICMP echo is not a connection IPVS schedules; the kernel's local stack would answer because the VIP is local, but KUBE-IPVS-FILTER REJECTs NEW packets to KUBE-IPVS-IPS addresses that are not in KUBE-CLUSTER-IP etc., so ping fails with current kube-proxy (older versions answered)",
			Source:   "anchors.md D; pkg/proxy/ipvs/proxier.go"},
		{ID: "no-endpoints", Summary: "a Service without endpoints",
			IPTables: "filter REJECT with icmp-port-unreachable in KUBE-SERVICES",
			IPVS:     "the virtual server exists with no real servers; ip_vs_schedule finds none and ip_vs_leave sends ICMP port unreachable and drops",
			Source:   "net/netfilter/ipvs/ip_vs_core.c ip_vs_leave"},
		{ID: "nodeport-localhost", Summary: "NodePort on 127.0.0.1",
			IPTables: "served (route_localnet=1)",
			IPVS:     "not served: no virtual server on loopback addresses",
			Source:   "kubernetes#96879"},
		{ID: "lb-short-circuit", Summary: "pod to its own Service's LoadBalancer IP",
			IPTables: "redirected to the Service chain (KUBE-EXT-*)",
			IPVS:     "the LB IP is bound to kube-ipvs0, so traffic from inside the cluster never leaves the node; it is balanced locally (ETP=Local can blackhole)",
			Source:   "kubernetes#115931, #75262; KEP-1860"},
		{ID: "connection-table", Summary: "connection tracking",
			IPTables: "nf_conntrack NAT only",
			IPVS:     "IPVS keeps its own connection table (ipvsadm -Lnc) with timeouts tcp 900 s, tcpfin 120 s, udp 300 s; net.ipv4.vs.conntrack=1 keeps nf_conntrack in step for masquerade",
			Source:   "ip_vs_conn.c; ip_vs_proto_tcp.c tcp_timeouts"},
		{ID: "affinity", Summary: "sessionAffinity: ClientIP",
			IPTables: "-m recent per endpoint, keyed on source IP, timeout from the last packet",
			IPVS:     "persistence (-p timeout): a template per client address; it cannot expire while it controls connections, so stickiness lasts as long as connections (incl. FIN_WAIT/TIME_WAIT entries) keep coming",
			Source:   "ip_vs_core.c ip_vs_sched_persist; ip_vs_conn.c ip_vs_conn_expire; kubernetes#89358"},
		{ID: "deprecated", Summary: "mode status",
			IPTables: "default mode",
			IPVS:     "deprecated since kube-proxy 1.35 (KEP-5495)",
			Source:   "KEP-5495"},
	}
}
