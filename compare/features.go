package compare

import "github.com/knet-dev/knet/cluster"

// Features is what a kube-proxy mode offers (kube-proxy v1.35; reference anchors §D).
type Features struct {
	// Schedulers are the endpoint selection algorithms available.
	Schedulers []string `json:"schedulers"`
	// Affinity is how sessionAffinity: ClientIP is implemented.
	Affinity string `json:"affinity"`
	// SourceRanges is how loadBalancerSourceRanges are enforced.
	SourceRanges string `json:"sourceRanges"`
	// Status is GA, deprecated, ...
	Status string `json:"status"`
}

// FeaturesOf returns the features of a kube-proxy mode.
func FeaturesOf(m cluster.ProxyMode) Features {
	switch m {
	case cluster.ProxyIPVS:
		return Features{Schedulers: []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"},
			Affinity:     "IPVS persistence (-p timeout, source IP); stickiness extended by TIME_WAIT entries",
			SourceRanges: "ipsets KUBE-LOAD-BALANCER-SOURCE-CIDR / KUBE-LOAD-BALANCER-FW",
			Status:       "deprecated in 1.35 (gate off 1.40, removal planned 1.43)"}
	case cluster.ProxyNFTables:
		return Features{Schedulers: []string{"random (numgen random mod N)"},
			Affinity:     "an nft set per Service with timeout, keyed on saddr . endpoint . port",
			SourceRanges: "firewall-ips verdict map with per-Service allow chains",
			Status:       "GA since 1.33; kernel ≥ 5.13, nft ≥ 1.0.0"}
	}
	return Features{Schedulers: []string{"random (-m statistic --mode random)"},
		Affinity:     "-m recent per endpoint (--rcheck --seconds timeout --reap)",
		SourceRanges: "KUBE-FW-* chain for the LB IP only (not LB → NodePort traffic)",
		Status:       "GA, the default"}
}

// Difference is one behaviour users trip on, per mode (reference anchors §D, from KEP-3866,
// KEP-265, the Kubernetes virtual-ips docs and the issues cited there).
type Difference struct {
	Aspect   string `json:"aspect"`
	IPTables string `json:"iptables"`
	IPVS     string `json:"ipvs"`
	NFTables string `json:"nftables"`
}

// Differences returns the behaviour differences between the modes, in a stable order.
func Differences() []Difference {
	return []Difference{
		{"Service dispatch", "linear KUBE-SERVICES chain, O(#Services) per new connection", "IPVS hash lookup at LOCAL_IN, ~O(1)", "one verdict-map lookup, ~O(1)"},
		{"Where the Service IP lives", "nowhere (rules only)", "bound as /32 on dummy kube-ipvs0 (shows in ip addr, local routes)", "nowhere (maps only)"},
		{"Ping a ClusterIP", "no reply (not DNATed, follows the default route)", "older: replies (IP is local); newer: REJECTed by KUBE-IPVS-FILTER", "not answered; cluster-ips-check rejects"},
		{"ClusterIP on a port with no Service", "not DNATed, routed off-node (times out)", "older: host sockets on 0.0.0.0 answer (k8s#72236); newer: REJECT", "rejected (undefined ports of ClusterIPs)"},
		{"NodePort addresses", "all local IPs (ADDRTYPE dst-type LOCAL)", "IPs of node interfaces", "--nodeport-addresses primary: the primary IP only"},
		{"NodePort on 127.0.0.1", "yes (route_localnet=1)", "no (k8s#96879)", "no by default"},
		{"Local firewall", "adds ACCEPT rules for NodePorts", "similar via iptables; FORWARD/INPUT DROP breakages", "adds no accept rules: open the NodePort range yourself"},
		{"Session affinity", "-m recent per endpoint", "IPVS persistence, extended by TIME_WAIT (k8s#89358)", "nft set per Service with timeout"},
		{"Pod → own Service LB IP", "redirected to the ClusterIP chain", "not redirected: LB IP is local on kube-ipvs0 (k8s#115931)", "handled in maps; honours ipMode"},
		{"Conntrack", "ct INVALID drop workaround", "own connection table (ipvsadm -lnc), tcp 900 s timeout", "nf_conntrack; --conntrack-tcp-be-liberal"},
		{"Control-plane update", "iptables-restore of changed chains; KUBE-SERVICES always whole", "netlink per server + small restore + ipset updates", "nft -f transaction of changed elements; private table"},
		{"Switching modes", "no automatic cleanup from IPVS: kube-proxy --cleanup or reboot", "same", "starting nftables deletes iptables/IPVS rules; rollback: nft delete table ip kube-proxy"},
	}
}
