// Package nftables renders what kube-proxy's nftables mode programs on a node, for
// kube-proxy v1.35 (pkg/proxy/nftables/proxier.go at v1.35.0; GA since 1.33): the
// `kube-proxy` table of family ip or ip6 with its base chains, the service-ips,
// service-nodeports, firewall-ips and no-endpoint-* verdict maps, the cluster-ips and
// nodeport-ips sets, per-service `service-`, `local-`, `external-`, `firewall-` and
// per-endpoint `endpoint-` chains named HASH-ns/svc/proto/port, `numgen random mod N`
// load balancing, ClientIP affinity sets, and masquerading through the 0x4000 mark.
//
// The renderer drives a knftables.Interface exactly as kube-proxy does (the real library;
// its Fake is a checked in-memory nftables), so the same Proxier programs a real kernel in
// the lab. Sync is kube-proxy's syncProxyRules: the first sync is full, later syncs only
// rewrite Services whose objects changed, stale chains are flushed and deleted one sync
// (≥1 s) later, and set/map elements are added and deleted as differences.
//
// Service iteration order is Go map order in kube-proxy; here it is sorted by
// ServicePortName, which only changes the order of lines in a transaction, never the
// resulting ruleset.
package nftables

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// DefaultVersion is the kube-proxy version whose nftables mode this package renders.
const DefaultVersion = "v1.35"

// Family is the IP family one Proxier handles (kube-proxy runs one per family).
type Family = kubeproxy.Family

// Families.
const (
	IPv4 = kubeproxy.IPv4
	IPv6 = kubeproxy.IPv6
)

// Options configure a Proxier like kube-proxy's flags and its view of the node.
type Options struct {
	NodeName string
	// NodeIP is the node's primary IP of this family (used to let the node through
	// loadBalancerSourceRanges that contain it).
	NodeIP netip.Addr
	Family Family
	// Detector is the local traffic detector (detectLocalMode with its CIDR or interface).
	Detector      kubeproxy.LocalDetector
	MasqueradeAll bool
	// MasqueradeBit is iptables.masqueradeBit (default 14: mark 0x4000).
	MasqueradeBit int
	// MarkFormat "tests" writes the mark as kube-proxy's unit tests do ("0x4000"); the
	// default writes it as a running kube-proxy does ("0x00004000").
	MarkFormat string
	// NodePortAddresses restricts NodePorts to node IPs in these prefixes; empty means all
	// local addresses.
	NodePortAddresses []netip.Prefix
	// LocalAddrs are the node's interface addresses (what kube-proxy's network interfacer
	// lists), used with NodePortAddresses to fill nodeport-ips.
	LocalAddrs []netip.Addr
	// ServiceCIDRs are the cluster's ServiceCIDRs of this family (the drop rule for
	// unallocated ClusterIPs).
	ServiceCIDRs []netip.Prefix
	// Zone is the node's topology.kubernetes.io/zone label (topology hints).
	Zone string
	// Version is the kube-proxy version to render; empty means DefaultVersion.
	Version string
}

// Proxier is kube-proxy's nftables Proxier for one family, driving a knftables.Interface.
type Proxier struct {
	opts  Options
	nft   knftables.Interface
	ipX   string
	addrT string
	mark  string

	flushed     bool
	syncedOnce  bool
	needFull    bool
	lastFP      map[string]string // service "ns/name" -> fingerprint of its ports and endpoints
	staleChains map[string]time.Time
	now         func() time.Time

	clusterIPs, serviceIPs, firewallIPs, noEndpointServices, noEndpointNodePorts, serviceNodePorts *elementStorage

	// LastTransaction is the main transaction of the last Sync (for op counts).
	LastTransaction *knftables.Transaction
}

// New returns a Proxier that programs nft. now supplies the clock (stale chains are
// deleted once they are older than a second); nil means time.Now.
func New(opts Options, nft knftables.Interface, now func() time.Time) (*Proxier, error) {
	if opts.Family == "" {
		opts.Family = IPv4
	}
	if opts.MasqueradeBit == 0 {
		opts.MasqueradeBit = 14
	}
	if opts.MasqueradeBit < 0 || opts.MasqueradeBit > 31 {
		return nil, fmt.Errorf("masqueradeBit %d out of range [0, 31]", opts.MasqueradeBit)
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if now == nil {
		now = time.Now
	}
	p := &Proxier{opts: opts, nft: nft, now: now, needFull: true, lastFP: map[string]string{}, staleChains: map[string]time.Time{}}
	p.ipX, p.addrT = "ip", "ipv4_addr"
	if opts.Family == IPv6 {
		p.ipX, p.addrT = "ip6", "ipv6_addr"
	}
	v := 1 << uint(opts.MasqueradeBit)
	p.mark = fmt.Sprintf("%#08x", v)
	if opts.MarkFormat == "tests" {
		p.mark = fmt.Sprintf("%#x", v)
	}
	p.clusterIPs = newElementStorage("set", clusterIPsSet)
	p.serviceIPs = newElementStorage("map", serviceIPsMap)
	p.firewallIPs = newElementStorage("map", firewallIPsMap)
	p.noEndpointServices = newElementStorage("map", noEndpointServicesMap)
	p.noEndpointNodePorts = newElementStorage("map", noEndpointNodePortsMap)
	p.serviceNodePorts = newElementStorage("map", serviceNodePortsMap)
	return p, nil
}

// ForceFullSync makes the next Sync a full one.
func (p *Proxier) ForceFullSync() { p.needFull = true }

// Table names and chain names, as kube-proxy spells them.
const (
	kubeProxyTable = "kube-proxy"

	filterPreroutingPreDNATChain = "filter-prerouting-pre-dnat"
	filterOutputPreDNATChain     = "filter-output-pre-dnat"
	filterInputChain             = "filter-input"
	filterForwardChain           = "filter-forward"
	filterOutputChain            = "filter-output"
	natPreroutingChain           = "nat-prerouting"
	natOutputChain               = "nat-output"
	natPostroutingChain          = "nat-postrouting"

	servicesChain       = "services"
	serviceIPsMap       = "service-ips"
	serviceNodePortsMap = "service-nodeports"
	nodePortIPsSet      = "nodeport-ips"
	clusterIPsSet       = "cluster-ips"

	serviceEndpointsCheckChain  = "service-endpoints-check"
	nodePortEndpointsCheckChain = "nodeport-endpoints-check"
	noEndpointServicesMap       = "no-endpoint-services"
	noEndpointNodePortsMap      = "no-endpoint-nodeports"
	rejectChain                 = "reject-chain"
	clusterIPsCheckChain        = "cluster-ips-check"
	firewallIPsMap              = "firewall-ips"
	firewallCheckChain          = "firewall-check"
	markMasqChain               = "mark-for-masquerade"
	masqueradingChain           = "masquerading"
)

type baseChainSpec struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

var baseChains = []baseChainSpec{
	{filterPreroutingPreDNATChain, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{filterOutputPreDNATChain, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10"},
	{filterInputChain, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{filterForwardChain, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{filterOutputChain, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{natPreroutingChain, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{natOutputChain, knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	{natPostroutingChain, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

type jumpSpec struct{ dst, src, extra string }

var jumpChains = []jumpSpec{
	{nodePortEndpointsCheckChain, filterInputChain, "ct state new"},
	{serviceEndpointsCheckChain, filterInputChain, "ct state new"},
	{serviceEndpointsCheckChain, filterForwardChain, "ct state new"},
	{serviceEndpointsCheckChain, filterOutputChain, "ct state new"},
	{firewallCheckChain, filterPreroutingPreDNATChain, "ct state new"},
	{firewallCheckChain, filterOutputPreDNATChain, "ct state new"},
	{servicesChain, natOutputChain, ""},
	{servicesChain, natPreroutingChain, ""},
	{masqueradingChain, natPostroutingChain, ""},
	{clusterIPsCheckChain, filterForwardChain, "ct state new"},
	{clusterIPsCheckChain, filterOutputChain, "ct state new"},
}

func ptr[T any](v T) *T { return &v }

func ensureChain(chain string, tx *knftables.Transaction, created map[string]bool, skip bool) {
	if created[chain] {
		return
	}
	created[chain] = true
	if skip {
		return
	}
	tx.Add(&knftables.Chain{Name: chain})
	tx.Flush(&knftables.Chain{Name: chain})
}

func (p *Proxier) nodePortMatchAll() bool { return len(p.opts.NodePortAddresses) == 0 }

func (p *Proxier) setup(ctx context.Context, tx *knftables.Transaction) {
	noLocalhost := "ip daddr != 127.0.0.0/8"
	if p.opts.Family == IPv6 {
		noLocalhost = "ip6 daddr != ::1"
	}
	tx.Add(&knftables.Table{Comment: ptr("rules for kube-proxy")})
	if !p.flushed {
		for _, bc := range baseChains {
			c := &knftables.Chain{Name: bc.name}
			tx.Add(c)
			tx.Delete(c)
		}
		p.flushed = true
	}
	for _, bc := range baseChains {
		c := &knftables.Chain{Name: bc.name, Type: ptr(bc.typ), Hook: ptr(bc.hook), Priority: ptr(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	created := map[string]bool{}
	for _, j := range jumpChains {
		ensureChain(j.dst, tx, created, false)
		tx.Add(&knftables.Rule{Chain: j.src, Rule: knftables.Concat(j.extra, "jump", j.dst)})
	}
	for _, c := range []string{servicesChain, clusterIPsCheckChain, masqueradingChain, markMasqChain} {
		ensureChain(c, tx, created, false)
	}
	tx.Add(&knftables.Rule{Chain: markMasqChain, Rule: knftables.Concat("mark", "set", "mark", "or", p.mark)})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: knftables.Concat("mark", "and", p.mark, "==", "0", "return")})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: knftables.Concat("mark", "set", "mark", "xor", p.mark)})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: "masquerade fully-random"})

	tx.Add(&knftables.Set{Name: clusterIPsSet, Type: p.addrT, Comment: ptr("Active ClusterIPs")})
	tx.Add(&knftables.Rule{Chain: clusterIPsCheckChain, Rule: knftables.Concat(p.ipX, "daddr", "@", clusterIPsSet, "reject"),
		Comment: ptr("Reject traffic to invalid ports of ClusterIPs")})
	if len(p.opts.ServiceCIDRs) > 0 {
		cidrs := make([]string, len(p.opts.ServiceCIDRs))
		for i, c := range p.opts.ServiceCIDRs {
			cidrs[i] = c.String()
		}
		tx.Add(&knftables.Rule{Chain: clusterIPsCheckChain, Rule: knftables.Concat(p.ipX, "daddr", "{", strings.Join(cidrs, ","), "}", "drop"),
			Comment: ptr("Drop traffic to unallocated ClusterIPs")})
	}

	tx.Add(&knftables.Set{Name: nodePortIPsSet, Type: p.addrT, Comment: ptr("IPs that accept NodePort traffic")})
	if p.nodePortMatchAll() {
		tx.Delete(&knftables.Set{Name: nodePortIPsSet})
	} else {
		tx.Flush(&knftables.Set{Name: nodePortIPsSet})
		for _, ip := range p.nodePortIPs() {
			tx.Add(&knftables.Element{Set: nodePortIPsSet, Key: []string{ip.String()}})
		}
	}

	tx.Add(&knftables.Map{Name: noEndpointServicesMap, Type: p.addrT + " . inet_proto . inet_service : verdict",
		Comment: ptr("vmap to drop or reject packets to services with no endpoints")})
	tx.Add(&knftables.Map{Name: noEndpointNodePortsMap, Type: "inet_proto . inet_service : verdict",
		Comment: ptr("vmap to drop or reject packets to service nodeports with no endpoints")})
	tx.Add(&knftables.Chain{Name: rejectChain, Comment: ptr("helper for @no-endpoint-services / @no-endpoint-nodeports")})
	tx.Flush(&knftables.Chain{Name: rejectChain})
	tx.Add(&knftables.Rule{Chain: rejectChain, Rule: "reject"})
	tx.Add(&knftables.Rule{Chain: serviceEndpointsCheckChain, Rule: knftables.Concat(p.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", noEndpointServicesMap)})
	if p.nodePortMatchAll() {
		tx.Add(&knftables.Rule{Chain: nodePortEndpointsCheckChain, Rule: knftables.Concat(noLocalhost, "meta l4proto . th dport", "vmap", "@", noEndpointNodePortsMap)})
	} else {
		tx.Add(&knftables.Rule{Chain: nodePortEndpointsCheckChain, Rule: knftables.Concat(p.ipX, "daddr", "@", nodePortIPsSet, "meta l4proto . th dport", "vmap", "@", noEndpointNodePortsMap)})
	}
	tx.Add(&knftables.Map{Name: firewallIPsMap, Type: p.addrT + " . inet_proto . inet_service : verdict",
		Comment: ptr("destinations that are subject to LoadBalancerSourceRanges")})
	ensureChain(firewallCheckChain, tx, created, false)
	tx.Add(&knftables.Rule{Chain: firewallCheckChain, Rule: knftables.Concat(p.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", firewallIPsMap)})

	tx.Add(&knftables.Map{Name: serviceIPsMap, Type: p.addrT + " . inet_proto . inet_service : verdict",
		Comment: ptr("ClusterIP, ExternalIP and LoadBalancer IP traffic")})
	tx.Add(&knftables.Map{Name: serviceNodePortsMap, Type: "inet_proto . inet_service : verdict", Comment: ptr("NodePort traffic")})
	tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat(p.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", serviceIPsMap)})
	if p.nodePortMatchAll() {
		tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat("fib daddr type local", noLocalhost, "meta l4proto . th dport", "vmap", "@", serviceNodePortsMap)})
	} else {
		tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat(p.ipX, "daddr @nodeport-ips", "meta l4proto . th dport", "vmap", "@", serviceNodePortsMap)})
	}
	for _, s := range []*elementStorage{p.clusterIPs, p.serviceIPs, p.firewallIPs, p.noEndpointServices, p.noEndpointNodePorts, p.serviceNodePorts} {
		s.readOrReset(ctx, tx, p.nft)
	}
}

// nodePortIPs are the node's addresses inside NodePortAddresses, loopback excluded
// (nftables mode has no localhost NodePorts).
func (p *Proxier) nodePortIPs() []netip.Addr {
	var out []netip.Addr
	for _, a := range p.opts.LocalAddrs {
		if a.IsLoopback() || kubeproxy.FamilyOf(a) != p.opts.Family {
			continue
		}
		for _, c := range p.opts.NodePortAddresses {
			if c.Contains(a) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// hashAndTruncate is kube-proxy's chain name base: 8 base32 characters of sha256(name),
// "-", name, truncated to fit nftables' name limit.
func hashAndTruncate(name string) string {
	const maxLen = knftables.NameLengthMax - 16
	h := sha256.Sum256([]byte(name))
	out := base32.StdEncoding.EncodeToString(h[:])[:8] + "-" + name
	if len(out) > maxLen {
		out = out[:maxLen-3] + "..."
	}
	return out
}

func chainBase(sp *kubeproxy.ServicePort) string {
	return hashAndTruncate(sp.Name.Namespace + "/" + sp.Name.Name + "/" + sp.Protocol + "/" + sp.Name.Port)
}

func endpointBase(sp *kubeproxy.ServicePort, ep *kubeproxy.Endpoint) string {
	ip := strings.ReplaceAll(ep.IP.String(), ":", ".")
	return hashAndTruncate(sp.Name.Namespace + "/" + sp.Name.Name + "/" + sp.Protocol + "/" + sp.Name.Port + "__" + ip + "/" + strconv.Itoa(ep.Port))
}

// fingerprint identifies what kube-proxy renders for a service port, to tell which
// Services changed between syncs (its change trackers drop no-op updates).
func fingerprint(sp *kubeproxy.ServicePort, eps []*kubeproxy.Endpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%d|%d|%d|%v|%v|%v|%v|%d|%v|%v", sp.NameString, sp.Protocol, sp.ClusterIP, sp.Port, sp.NodePort,
		sp.HealthCheckNodePort, sp.ExternalIPs, sp.LoadBalancerVIPs, sp.SourceRanges, sp.AffinityClientIP, sp.StickySeconds,
		sp.ExternalPolicyLocal, sp.InternalPolicyLocal)
	for _, e := range eps {
		fmt.Fprintf(&b, "|%s %v %v %v %v %v %v", e.String(), e.Local, e.Ready, e.Serving, e.Terminating, e.ZoneHints, e.NodeHints)
	}
	return b.String()
}

// ChainNames are the chain and set names kube-proxy uses for one service port and its
// endpoints (for explain and verify).
type ChainNames struct {
	Cluster, Local, External, Firewall string
	Endpoint, Affinity                 map[string]string // endpoint "IP:port" -> name
}

// Sync runs one syncProxyRules over the full desired state in objs.
func (p *Proxier) Sync(ctx context.Context, objs cluster.Objects) error {
	start := p.now()
	doFull := p.needFull
	ports := kubeproxy.ServicePorts(objs.Services, p.opts.Family)
	eps := kubeproxy.Endpoints(objs.EndpointSlices, ports, p.opts.Family, p.opts.NodeName)
	for sp, list := range eps {
		for _, e := range list {
			e.Chain = endpointBase(sp, e)
		}
	}

	// Which Services changed since the last successful sync (kube-proxy's change trackers).
	fp := map[string]string{}
	for _, sp := range ports {
		k := sp.Name.Namespace + "/" + sp.Name.Name
		fp[k] += fingerprint(sp, eps[sp])
	}
	changed := map[string]bool{}
	for k, v := range fp {
		if p.lastFP[k] != v {
			changed[k] = true
		}
	}

	if len(p.staleChains) > 0 {
		oneSecondAgo := start.Add(-time.Second)
		tx := p.nft.NewTransaction()
		var names []string
		for c, t := range p.staleChains {
			if t.Before(oneSecondAgo) {
				names = append(names, c)
			}
		}
		sort.Strings(names)
		for _, c := range names {
			tx.Delete(&knftables.Chain{Name: c})
			delete(p.staleChains, c)
		}
		if len(names) > 0 {
			if err := p.nft.Run(ctx, tx); err != nil {
				doFull = true
			}
		}
	}

	tx := p.nft.NewTransaction()
	if doFull {
		p.setup(ctx, tx)
	}
	existingChains := map[string]bool{}
	if list, err := p.nft.List(ctx, "chain"); err == nil {
		for _, c := range list {
			existingChains[c] = true
		}
	} else if !knftables.IsNotFound(err) {
		existingChains = nil
	}
	existingAffinity := map[string]bool{}
	if list, err := p.nft.List(ctx, "sets"); err == nil {
		for _, s := range list {
			if strings.HasPrefix(s, "affinity-") {
				existingAffinity[s] = true
			}
		}
	} else if !knftables.IsNotFound(err) {
		existingAffinity = nil
	}
	activeChains := map[string]bool{}
	activeAffinity := map[string]bool{}

	for _, sp := range ports {
		p.writeServicePort(tx, sp, eps[sp], doFull, changed, existingChains, existingAffinity, activeChains, activeAffinity)
	}

	var existing []string
	for c := range existingChains {
		existing = append(existing, c)
	}
	sort.Strings(existing)
	for _, c := range existing {
		if !strings.Contains(c, "/") {
			continue
		}
		if !activeChains[c] {
			tx.Flush(&knftables.Chain{Name: c})
			p.staleChains[c] = start
		} else {
			delete(p.staleChains, c)
		}
	}
	var affs []string
	for s := range existingAffinity {
		affs = append(affs, s)
	}
	sort.Strings(affs)
	for _, s := range affs {
		if !activeAffinity[s] {
			tx.Delete(&knftables.Set{Name: s})
		}
	}
	for _, s := range []*elementStorage{p.clusterIPs, p.serviceIPs, p.firewallIPs, p.noEndpointServices, p.noEndpointNodePorts, p.serviceNodePorts} {
		s.cleanupLeftoverKeys(tx)
	}
	p.LastTransaction = tx
	if err := p.nft.Run(ctx, tx); err != nil {
		clear(p.staleChains)
		p.needFull = true
		p.syncedOnce = true
		return fmt.Errorf("nftables sync: %w", err)
	}
	p.syncedOnce = true
	p.needFull = false
	p.lastFP = fp
	return nil
}

func (p *Proxier) writeServicePort(tx *knftables.Transaction, sp *kubeproxy.ServicePort, allEPs []*kubeproxy.Endpoint, doFull bool, changed, existingChains, existingAffinity, activeChains, activeAffinity map[string]bool) {
	base := chainBase(sp)
	clusterPolicyChain := "service-" + base
	localPolicyChain := "local-" + base
	externalTrafficChain := "external-" + base
	fwChain := "firewall-" + base
	proto := sp.Protocol
	spn := sp.NameString
	port := strconv.Itoa(sp.Port)

	clusterEPs, localEPs, reachable, hasEndpoints := kubeproxy.CategorizeEndpoints(allEPs, sp, p.opts.NodeName, p.opts.Zone)
	skip := !doFull && !changed[sp.Name.Namespace+"/"+sp.Name.Name]

	epChain := func(e *kubeproxy.Endpoint) string { return "endpoint-" + e.Chain }
	affSet := func(e *kubeproxy.Endpoint) string { return "affinity-" + e.Chain }
	epSkip := func(e *kubeproxy.Endpoint) bool {
		if p.syncedOnce || existingChains == nil || existingAffinity == nil {
			return false
		}
		return existingChains[epChain(e)] && sp.AffinityClientIP == existingAffinity[affSet(e)]
	}
	for _, e := range reachable {
		ensureChain(epChain(e), tx, activeChains, skip || epSkip(e))
		if sp.AffinityClientIP {
			activeAffinity[affSet(e)] = true
		}
	}
	usesClusterPolicyChain := len(clusterEPs) > 0 && sp.UsesClusterEndpoints()
	if usesClusterPolicyChain {
		ensureChain(clusterPolicyChain, tx, activeChains, skip)
	}
	usesLocalPolicyChain := len(localEPs) > 0 && sp.UsesLocalEndpoints()
	if usesLocalPolicyChain {
		ensureChain(localPolicyChain, tx, activeChains, skip)
	}
	internalPolicyChain := clusterPolicyChain
	hasInternal := hasEndpoints
	if sp.InternalPolicyLocal {
		internalPolicyChain = localPolicyChain
		if len(localEPs) == 0 {
			hasInternal = false
		}
	}
	externalPolicyChain := clusterPolicyChain
	hasExternal := hasEndpoints
	if sp.ExternalPolicyLocal {
		externalPolicyChain = localPolicyChain
		if len(localEPs) == 0 {
			hasExternal = false
		}
	}
	usesExternalTrafficChain := hasEndpoints && sp.ExternallyAccessible()
	if usesExternalTrafficChain {
		ensureChain(externalTrafficChain, tx, activeChains, skip)
	}
	var internalVerdict, externalVerdict string
	if !hasEndpoints {
		internalVerdict = "goto " + rejectChain
		externalVerdict = "goto " + rejectChain
	} else {
		if !hasInternal {
			internalVerdict = "drop"
		}
		if !hasExternal {
			externalVerdict = "drop"
		}
	}

	p.clusterIPs.ensureElem(tx, &knftables.Element{Set: clusterIPsSet, Key: []string{sp.ClusterIP.String()}})
	if hasInternal {
		p.serviceIPs.ensureElem(tx, &knftables.Element{Map: serviceIPsMap, Key: []string{sp.ClusterIP.String(), proto, port}, Value: []string{"goto " + internalPolicyChain}})
	} else {
		p.noEndpointServices.ensureElem(tx, &knftables.Element{Map: noEndpointServicesMap, Key: []string{sp.ClusterIP.String(), proto, port}, Value: []string{internalVerdict}, Comment: ptr(spn)})
	}
	for _, ip := range sp.ExternalIPs {
		if hasEndpoints {
			p.serviceIPs.ensureElem(tx, &knftables.Element{Map: serviceIPsMap, Key: []string{ip.String(), proto, port}, Value: []string{"goto " + externalTrafficChain}})
		}
		if !hasExternal {
			p.noEndpointServices.ensureElem(tx, &knftables.Element{Map: noEndpointServicesMap, Key: []string{ip.String(), proto, port}, Value: []string{externalVerdict}, Comment: ptr(spn)})
		}
	}
	usesFWChain := len(sp.LoadBalancerVIPs) > 0 && len(sp.SourceRanges) > 0
	if usesFWChain {
		ensureChain(fwChain, tx, activeChains, skip)
	}
	for _, ip := range sp.LoadBalancerVIPs {
		if hasEndpoints {
			p.serviceIPs.ensureElem(tx, &knftables.Element{Map: serviceIPsMap, Key: []string{ip.String(), proto, port}, Value: []string{"goto " + externalTrafficChain}})
		}
		if usesFWChain {
			p.firewallIPs.ensureElem(tx, &knftables.Element{Map: firewallIPsMap, Key: []string{ip.String(), proto, port}, Value: []string{"goto " + fwChain}})
		}
	}
	if !hasExternal {
		for _, ip := range sp.LoadBalancerVIPs {
			p.noEndpointServices.ensureElem(tx, &knftables.Element{Map: noEndpointServicesMap, Key: []string{ip.String(), proto, port}, Value: []string{externalVerdict}, Comment: ptr(spn)})
		}
	}
	if sp.NodePort != 0 {
		np := strconv.Itoa(sp.NodePort)
		if hasEndpoints {
			p.serviceNodePorts.ensureElem(tx, &knftables.Element{Map: serviceNodePortsMap, Key: []string{proto, np}, Value: []string{"goto " + externalTrafficChain}})
		}
		if !hasExternal {
			p.noEndpointNodePorts.ensureElem(tx, &knftables.Element{Map: noEndpointNodePortsMap, Key: []string{proto, np}, Value: []string{externalVerdict}, Comment: ptr(spn)})
		}
	}
	if skip {
		return
	}
	if hasInternal {
		if p.opts.MasqueradeAll {
			tx.Add(&knftables.Rule{Chain: internalPolicyChain, Rule: p.ipX + " daddr " + sp.ClusterIP.String() + " jump " + markMasqChain})
		} else if ifNotLocal := p.ifNotLocal(); ifNotLocal != "" {
			tx.Add(&knftables.Rule{Chain: internalPolicyChain, Rule: p.ipX + " daddr " + sp.ClusterIP.String() + " " + ifNotLocal + " jump " + markMasqChain})
		}
	}
	if usesExternalTrafficChain {
		if !sp.ExternalPolicyLocal {
			tx.Add(&knftables.Rule{Chain: externalTrafficChain, Rule: knftables.Concat("jump", markMasqChain)})
		} else {
			if ifLocal := p.ifLocal(); ifLocal != "" {
				tx.Add(&knftables.Rule{Chain: externalTrafficChain, Rule: knftables.Concat(ifLocal, "goto", clusterPolicyChain), Comment: ptr("short-circuit pod traffic")})
			}
			tx.Add(&knftables.Rule{Chain: externalTrafficChain, Rule: knftables.Concat("fib", "saddr", "type", "local", "jump", markMasqChain), Comment: ptr("masquerade local traffic")})
			tx.Add(&knftables.Rule{Chain: externalTrafficChain, Rule: knftables.Concat("fib", "saddr", "type", "local", "goto", clusterPolicyChain), Comment: ptr("short-circuit local traffic")})
		}
		if hasExternal {
			tx.Add(&knftables.Rule{Chain: externalTrafficChain, Rule: knftables.Concat("goto", externalPolicyChain)})
		}
	}
	if usesFWChain {
		var sources []string
		allowFromNode := false
		for _, c := range sp.SourceRanges {
			if len(sources) > 0 {
				sources = append(sources, ",")
			}
			sources = append(sources, c.String())
			if p.opts.NodeIP.IsValid() && c.Contains(p.opts.NodeIP) {
				allowFromNode = true
			}
		}
		if allowFromNode {
			for _, ip := range sp.LoadBalancerVIPs {
				sources = append(sources, ",", ip.String())
			}
		}
		tx.Add(&knftables.Rule{Chain: fwChain, Rule: knftables.Concat(p.ipX, "saddr", "!=", "{", sources, "}", "drop")})
	}
	if sp.AffinityClientIP {
		for _, e := range reachable {
			tx.Add(&knftables.Set{Name: affSet(e), Type: p.addrT, Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: ptr(time.Duration(sp.StickySeconds) * time.Second)})
		}
	}
	if usesClusterPolicyChain {
		p.writeServiceToEndpointRules(tx, sp, clusterPolicyChain, clusterEPs, epChain, affSet)
	}
	if usesLocalPolicyChain {
		p.writeServiceToEndpointRules(tx, sp, localPolicyChain, localEPs, epChain, affSet)
	}
	for _, e := range reachable {
		if epSkip(e) {
			continue
		}
		c := epChain(e)
		tx.Add(&knftables.Rule{Chain: c, Rule: p.ipX + " saddr " + e.IP.String() + " jump " + markMasqChain})
		if sp.AffinityClientIP {
			tx.Add(&knftables.Rule{Chain: c, Rule: "update @" + affSet(e) + " { " + p.ipX + " saddr }"})
		}
		tx.Add(&knftables.Rule{Chain: c, Rule: "meta l4proto " + proto + " dnat to " + e.String()})
	}
}

func (p *Proxier) writeServiceToEndpointRules(tx *knftables.Transaction, sp *kubeproxy.ServicePort, chain string, eps []*kubeproxy.Endpoint, epChain, affSet func(*kubeproxy.Endpoint) string) {
	if sp.AffinityClientIP {
		for _, e := range eps {
			tx.Add(&knftables.Rule{Chain: chain, Rule: p.ipX + " saddr @" + affSet(e) + " goto " + epChain(e)})
		}
	}
	// The load-balancing rule, written as knftables.Concat would join it (hand-built:
	// Concat's reflection is the renderer's hot spot at 100k endpoints).
	var b strings.Builder
	b.WriteString("numgen random mod ")
	b.WriteString(strconv.Itoa(len(eps)))
	b.WriteString(" vmap {")
	for i, e := range eps {
		if i > 0 {
			b.WriteString(" ,")
		}
		b.WriteString(" ")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(" : goto ")
		b.WriteString(epChain(e))
	}
	b.WriteString(" }")
	tx.Add(&knftables.Rule{Chain: chain, Rule: b.String()})
}

// ifLocal is the nftables form of the local traffic detector (pkg/proxy/util/localdetector.go
// IfLocalNFT): `ip saddr CIDR`, `iifname BRIDGE`, `iifname PREFIX*`.
func (p *Proxier) ifLocal() string {
	d := p.opts.Detector
	switch d.Mode {
	case kubeproxy.LocalClusterCIDR, kubeproxy.LocalNodeCIDR:
		return knftables.Concat(p.ipX, "saddr", d.CIDR.String())
	case kubeproxy.LocalBridgeInterface:
		return knftables.Concat("iifname", d.Interface)
	case kubeproxy.LocalInterfaceNamePrefix:
		return knftables.Concat("iifname", d.Interface+"*")
	}
	return ""
}

// ifNotLocal is IfNotLocalNFT.
func (p *Proxier) ifNotLocal() string {
	d := p.opts.Detector
	switch d.Mode {
	case kubeproxy.LocalClusterCIDR, kubeproxy.LocalNodeCIDR:
		return knftables.Concat(p.ipX, "saddr", "!=", d.CIDR.String())
	case kubeproxy.LocalBridgeInterface:
		return knftables.Concat("iifname", "!=", d.Interface)
	case kubeproxy.LocalInterfaceNamePrefix:
		return knftables.Concat("iifname", "!=", d.Interface+"*")
	}
	return ""
}

// elementStorage tracks a set or map's elements so a sync adds and deletes only
// differences (kube-proxy's nftElementStorage).
type elementStorage struct {
	kind, name string
	elements   map[string]string
	leftover   map[string]bool
}

func newElementStorage(kind, name string) *elementStorage {
	return &elementStorage{kind: kind, name: name, elements: map[string]string{}, leftover: map[string]bool{}}
}

func (s *elementStorage) readOrReset(ctx context.Context, tx *knftables.Transaction, nft knftables.Interface) {
	clear(s.elements)
	defer s.resetLeftover()
	elems, err := nft.ListElements(ctx, s.kind, s.name)
	if err != nil && !knftables.IsNotFound(err) {
		if s.kind == "set" {
			tx.Flush(&knftables.Set{Name: s.name})
		} else {
			tx.Flush(&knftables.Map{Name: s.name})
		}
		return
	}
	for _, e := range elems {
		s.elements[strings.Join(e.Key, " . ")] = strings.Join(e.Value, " . ")
	}
}

func (s *elementStorage) resetLeftover() {
	clear(s.leftover)
	for k := range s.elements {
		s.leftover[k] = true
	}
}

func (s *elementStorage) ensureElem(tx *knftables.Transaction, e *knftables.Element) {
	k, v := strings.Join(e.Key, " . "), strings.Join(e.Value, " . ")
	if old, ok := s.elements[k]; ok {
		if old != v {
			tx.Delete(e)
			tx.Add(e)
			s.elements[k] = v
		}
		delete(s.leftover, k)
		return
	}
	tx.Add(e)
	s.elements[k] = v
}

func (s *elementStorage) cleanupLeftoverKeys(tx *knftables.Transaction) {
	keys := make([]string, 0, len(s.leftover))
	for k := range s.leftover {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := &knftables.Element{Key: strings.Split(k, " . ")}
		if s.kind == "set" {
			e.Set = s.name
		} else {
			e.Map = s.name
		}
		tx.Delete(e)
		delete(s.elements, k)
	}
	s.resetLeftover()
}
