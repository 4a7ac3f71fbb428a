// Package verify compares a node's intent (what CNI and kube-proxy should have programmed,
// rendered by package render) with its actual state (a snapshot parsed by package snapshot)
// and reports findings: what is missing, stale, left over from another kube-proxy mode or
// misconfigured, each with its severity, the Kubernetes object concerned, the evidence as
// native lines from the snapshot (iptables-save, ip route, ip link, ipvsadm-save, nft,
// sysctl) and a suggested fix.
//
// The comparison is done on the model (chains, rules, virtual services, routes, links,
// sysctls), never on text. It mirrors kube-proxy v1.35 naming (KUBE-SVC-/KUBE-SEP- chains,
// kube-ipvs0, `table ip kube-proxy`) and the CNIs' routes as package render programs them.
package verify

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
)

// Severity is how bad a finding is; the values are the CLI and JSON tokens.
type Severity string

// Severities, worst first.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case SeverityError:
		return 0
	case SeverityWarning:
		return 1
	}
	return 2
}

// Finding is one difference between intent and actual.
type Finding struct {
	Severity Severity `json:"severity"`
	// Check is a stable id such as "route.missing-pod-block".
	Check string `json:"check"`
	// Object is the Kubernetes object concerned: "Service ns/name:port", "Node x".
	Object  string `json:"object"`
	Message string `json:"message"`
	// Evidence are lines in the native format: from the snapshot where the state exists
	// there, prefixed "expected: " where they come from the intent because the snapshot
	// lacks them.
	Evidence []string `json:"evidence,omitempty"`
	// Fix is a suggested remedy.
	Fix string `json:"fix,omitempty"`
}

// Checks are the stable check ids Verify can report.
const (
	CheckIPTMissingServiceChain  = "iptables.missing-service-chain"
	CheckIPTMissingEndpointChain = "iptables.missing-endpoint-chain"
	CheckIPTMissingRule          = "iptables.missing-rule"
	CheckIPTStaleChain           = "iptables.stale-chain"
	CheckIPTDNATNotEndpoint      = "iptables.dnat-not-endpoint"
	CheckIPVSMissingService      = "ipvs.missing-virtual-service"
	CheckIPVSMissingRealServer   = "ipvs.missing-real-server"
	CheckIPVSStaleRealServer     = "ipvs.stale-real-server"
	CheckIPVSStaleService        = "ipvs.stale-virtual-service"
	CheckIPVSAddrNoService       = "ipvs.address-without-service"
	CheckIPVSServiceNoAddr       = "ipvs.service-without-address"
	CheckNFTMissingTable         = "nftables.missing-table"
	CheckNFTMissingElement       = "nftables.missing-element"
	CheckNFTMissingChain         = "nftables.missing-chain"
	CheckNFTStaleChain           = "nftables.stale-chain"
	CheckLeftoverIPTables        = "leftover.iptables"
	CheckLeftoverIPVS            = "leftover.ipvs"
	CheckLeftoverNFTables        = "leftover.nftables"
	CheckRouteMissingPodBlock    = "route.missing-pod-block"
	CheckRouteWrongDevice        = "route.wrong-device"
	CheckRouteMissingPodRoute    = "route.missing-pod-route"
	CheckRouteMissingBlackhole   = "route.missing-blackhole"
	CheckLinkMissingTunnel       = "link.missing-tunnel"
	CheckMTUMismatch             = "mtu.tunnel-mismatch"
	CheckSysctlIPForward         = "sysctl.ip-forward-off"
	CheckSysctlRPFilter          = "sysctl.rp-filter-strict"
	CheckConntrackNearFull       = "conntrack.near-full"
	// CheckNotCollected: the intent has state of a kind the snapshot holds nothing of (the
	// dump is missing: not collected, or unreadable without root), so it cannot be compared.
	CheckNotCollected = "snapshot.not-collected"
)

// verifier carries what the checks share.
type verifier struct {
	intent, actual *dataplane.Node
	c              *cluster.Cluster
	node           string
	index          *objectIndex // built on first use by names
	out            []Finding
	bufA, bufB     []byte // sameRules' buffers
}

// names returns the object index, built the first time a finding needs an object.
func (v *verifier) names() *objectIndex {
	if v.index == nil {
		v.index = newObjectIndex(v.c, v.node)
	}
	return v.index
}

func (v *verifier) add(f Finding) { v.out = append(v.out, f) }

// Verify compares intent (render.Node for nodeName of c) with actual (snapshot.Load) and
// returns the findings sorted by severity, check, object and message.
func Verify(intent, actual *dataplane.Node, c *cluster.Cluster, nodeName string) []Finding {
	v := &verifier{intent: intent, actual: actual, c: c, node: nodeName}
	for _, check := range []func(*verifier){
		checkCollected,
		checkIPTablesServices,
		checkIPTablesStale,
		checkIPTablesDNAT,
		checkIPVSServices,
		checkIPVSAddresses,
		checkNFTables,
		checkLeftovers,
		checkPodRoutes,
		checkTunnelMTU,
		checkSysctls,
		checkConntrack,
	} {
		check(v)
	}
	Sort(v.out)
	return v.out
}

// Sort orders findings: errors first, then by check, object and message.
func Sort(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Severity.rank(), b.Severity.rank()),
			cmp.Compare(a.Check, b.Check),
			cmp.Compare(a.Object, b.Object),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

// Count returns how many findings have severity s.
func Count(fs []Finding, s Severity) int {
	n := 0
	for _, f := range fs {
		if f.Severity == s {
			n++
		}
	}
	return n
}

func (v *verifier) nodeObject() string { return "Node " + v.node }

// checkCollected reports each kind of state the intent has and the snapshot lacks entirely
// (no iptables-save, ipvsadm-save or nft dump), once, instead of one finding per object; the
// checks of that kind then have nothing to compare.
func checkCollected(v *verifier) {
	miss := func(what, file string) {
		v.add(Finding{Severity: SeverityWarning, Check: CheckNotCollected, Object: v.nodeObject(),
			Message:  fmt.Sprintf("the snapshot has no %s state (%s): it was not collected or could not be read, so it is not verified", what, file),
			Evidence: []string{"missing: " + file},
			Fix:      "collect as root on the node (knet collect), with " + what + " tools installed"})
	}
	if natTable(v.intent) != nil && len(natTable(v.intent).Chains) > 0 && v.actual.IPTables == nil {
		miss("iptables", "iptables-save.txt")
	}
	if len(ipvsServices(v.intent)) > 0 && v.actual.IPVS == nil {
		miss("IPVS", "ipvsadm-save.txt")
	}
	if len(kubeProxyTables(v.intent)) > 0 && v.actual.NFTables == nil {
		miss("nftables", "nft-ruleset.txt")
	}
}
