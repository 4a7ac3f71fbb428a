// Package dataplane holds Node, the full state of one Linux network namespace as Kubernetes
// programs it: links, addresses, routes, policy rules, neighbours and fdb (package route),
// iptables tables for IPv4 and IPv6 (package netfilter), IPVS (package ipvs), ipsets
// (package ipset), nftables (package nftables), the conntrack table (package conntrack) and
// the sysctls that change forwarding.
//
// A Node is filled either by a renderer (render/...: what kube-proxy and the CNI would
// program) or by a parser (format/...: what a real node shows), and is read by everything
// else. The model is portable: nothing under dataplane touches the operating system.
package dataplane

import (
	"github.com/knet-dev/knet/dataplane/conntrack"
	"github.com/knet-dev/knet/dataplane/cri"
	"github.com/knet-dev/knet/dataplane/ipset"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/dataplane/route"
)

// Node is one network namespace: a Kubernetes node's host namespace, or a pod's.
// Nil sub-states mean "not present / not known" (a pod namespace has no IPVS, a snapshot
// taken without ipset has no IPSets).
type Node struct {
	// Name is the Kubernetes node name, or "NODE/POD" for a pod's namespace.
	Name string

	// Net holds links, addresses, routes, policy rules, neighbours and fdb entries.
	Net *route.Stack

	// IPTables is the IPv4 iptables state (`iptables-save`), IP6Tables the IPv6 one.
	IPTables  *netfilter.Ruleset
	IP6Tables *netfilter.Ruleset

	// IPVS is the IP Virtual Server state (`ipvsadm -Ln`).
	IPVS *ipvs.State

	// IPSets are the ipsets (`ipset save`).
	IPSets *ipset.Sets

	// NFTables is the nftables ruleset (`nft list ruleset`).
	NFTables *nftables.Ruleset

	// Conntrack is the connection tracking table (`conntrack -L`).
	Conntrack *conntrack.Table

	// Sysctls holds the sysctls that matter to forwarding, keyed by their /proc/sys path
	// below net/, e.g. "ipv4/ip_forward", "ipv4/conf/all/rp_filter".
	Sysctls map[string]string

	// CRI is the container runtime's pod sandboxes and containers (`crictl pods`, `crictl ps`).
	CRI *cri.State

	// Pods are the namespaces of the pods running on this node, keyed by "namespace/name".
	Pods map[string]*Node
}
