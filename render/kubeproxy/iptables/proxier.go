// Package iptables renders what kube-proxy's iptables mode programs on a node, byte for byte:
// the iptables-restore input of every syncProxyRules() call, following
// kubernetes/kubernetes pkg/proxy/iptables/proxier.go as of v1.35 (the default Version;
// commit 531be81208e2274ef42e72525a26610a9622bcdf, with nfacct counters, KUBE-PROXY-FIREWALL,
// no KUBE-MARK-DROP) — see reference kube-proxy.md §1.
//
// Proxier is stateful like upstream's, so a sequence of Sync calls reproduces partial syncs
// (KEP-3453 MinimizeIPTablesRestore): only Services whose objects or endpoints changed get
// their KUBE-SVC/SVL/EXT/FW/SEP chains rewritten, and chains no longer used are flushed and
// deleted (`-X`). Upstream iterates Services in Go map order; knet sorts service ports by
// their ServicePortName string, so output is deterministic. Where upstream reads the node
// (iptables-save for stale chains, nfacct, random-fully support, conntrack sysctls), Options
// and the Proxier's own record of what it programmed stand in.
package iptables

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// Chain names kube-proxy owns.
const (
	ChainServices         = "KUBE-SERVICES"
	ChainExternalServices = "KUBE-EXTERNAL-SERVICES"
	ChainNodePorts        = "KUBE-NODEPORTS"
	ChainPostrouting      = "KUBE-POSTROUTING"
	ChainMarkMasq         = "KUBE-MARK-MASQ"
	ChainForward          = "KUBE-FORWARD"
	ChainProxyFirewall    = "KUBE-PROXY-FIREWALL"
	ChainProxyCanary      = "KUBE-PROXY-CANARY"
	// ChainKubeletFirewall and ChainKubeletCanary belong to kubelet.
	ChainKubeletFirewall = "KUBE-FIREWALL"
	ChainKubeletCanary   = "KUBE-KUBELET-CANARY"

	PrefixSVC = "KUBE-SVC-"
	PrefixSVL = "KUBE-SVL-"
	PrefixEXT = "KUBE-EXT-"
	PrefixFW  = "KUBE-FW-"
	PrefixSEP = "KUBE-SEP-"
)

// nfacct counter names (pkg/proxy/metrics).
const (
	NFAcctInvalidDropped     = "ct_state_invalid_dropped_pkts"
	NFAcctLocalhostNodePorts = "localhost_nps_accepted_pkts"
)

// PortProtoHash is kube-proxy's portProtoHash: base32(sha256(servicePortName+protocol))[:16].
func PortProtoHash(servicePortName, protocol string) string {
	h := sha256.Sum256([]byte(servicePortName + protocol))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// EndpointChainName is kube-proxy's servicePortEndpointChainName.
func EndpointChainName(servicePortName, protocol, endpoint string) string {
	h := sha256.Sum256([]byte(servicePortName + protocol + endpoint))
	return PrefixSEP + base32.StdEncoding.EncodeToString(h[:])[:16]
}

// IsServiceChain reports whether chain is a per-service chain kube-proxy deletes when stale.
func IsServiceChain(chain string) bool {
	for _, p := range []string{PrefixSVC, PrefixSVL, PrefixEXT, PrefixFW, PrefixSEP} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// ComputeProbability is kube-proxy's computeProbability: fmt "%0.10f" of 1/n.
func ComputeProbability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }

// svcChains are a service port's chain names, computed once.
type svcChains struct {
	svc, svl, ext, fw string
}

// Proxier is one single-family kube-proxy iptables proxier.
type Proxier struct {
	opts Options
	err  error
	mark string

	needFullSync bool
	syncs        int
	largeCluster bool

	// fingerprints of each Service (namespace/name) as last synced.
	fingerprints map[string]string
	// existing is the set of nat chains present after the last successful restore;
	// previous is the set before it (RestoreFailed rolls back to it).
	existing, previous map[string]bool

	probabilities []string
}

// NewProxier returns a Proxier; invalid options make every Sync fail with the reason.
func NewProxier(opts Options) *Proxier {
	o, err := opts.normalized()
	p := &Proxier{opts: o, err: err, needFullSync: true,
		fingerprints: map[string]string{}, existing: map[string]bool{}}
	v := 1 << uint(o.MasqueradeBit)
	if o.MarkFormat == MarkTests {
		p.mark = "0x" + strconv.FormatInt(int64(v), 16)
	} else {
		p.mark = fmt.Sprintf("%#08x", v)
	}
	return p
}

// Options returns the normalised options in use.
func (p *Proxier) Options() Options { return p.opts }

// MasqueradeMark is the mark as written ("0x00004000" or "0x4000").
func (p *Proxier) MasqueradeMark() string { return p.mark }

// ForceFullSync makes the next Sync a full one (upstream forceSyncProxyRules, called when the
// canary chain disappears or the node's topology labels change).
func (p *Proxier) ForceFullSync() { p.needFullSync = true }

// RestoreFailed tells the Proxier that the restore input of the last Sync was rejected
// (iptables-restore failed): the node keeps its previous chains and the next Sync is full,
// as upstream sets needFullSync after a failed restore.
func (p *Proxier) RestoreFailed() {
	if p.previous != nil {
		p.existing = p.previous
	}
	p.needFullSync = true
	p.fingerprints = map[string]string{}
}

// Render returns the restore input of kube-proxy's first (full) sync for objs.
func Render(objs cluster.Objects, opts Options) ([]byte, error) {
	return NewProxier(opts).Sync(objs)
}

func (p *Proxier) probability(n int) string {
	if len(p.probabilities) == 0 {
		p.probabilities = append(p.probabilities, "<bad value>")
	}
	for i := len(p.probabilities); i <= n; i++ {
		p.probabilities = append(p.probabilities, ComputeProbability(i))
	}
	return p.probabilities[n]
}

func (p *Proxier) chains(sp *kubeproxy.ServicePort) svcChains {
	h := PortProtoHash(sp.NameString, sp.Protocol)
	return svcChains{svc: PrefixSVC + h, svl: PrefixSVL + h, ext: PrefixEXT + h, fw: PrefixFW + h}
}

// sepChain names ep's KUBE-SEP chain, computed once per endpoint and sync.
func (p *Proxier) sepChain(sp *kubeproxy.ServicePort, ep *kubeproxy.Endpoint) string {
	if ep.Chain == "" {
		ep.Chain = EndpointChainName(sp.NameString, sp.Protocol, ep.String())
	}
	return ep.Chain
}

// portEndpoints pairs a service port with its endpoints.
type portEndpoints struct {
	sp  *kubeproxy.ServicePort
	eps []*kubeproxy.Endpoint
}

// state computes the service ports, endpoints and per-Service fingerprints of objs. A
// Service's fingerprint changes when its derived service ports change (upstream's
// ServiceChangeTracker compares the ServicePortMaps) or when any EndpointSlice of the
// proxier's address type labelled for it is added, removed or changed in any field
// (upstream's EndpointSliceCache compares the slice objects with reflect.DeepEqual; knet
// compares a hash of their JSON encoding).
func (p *Proxier) state(objs cluster.Objects) ([]portEndpoints, map[string]string) {
	ports := kubeproxy.ServicePorts(objs.Services, p.opts.Family)
	epMap := kubeproxy.Endpoints(objs.EndpointSlices, ports, p.opts.Family, p.opts.NodeName)
	out := make([]portEndpoints, len(ports))
	fps := make(map[string]string, len(ports))
	var b []byte
	for i, sp := range ports {
		out[i] = portEndpoints{sp: sp, eps: epMap[sp]}
		key := sp.Name.Namespace + "/" + sp.Name.Name
		b = appendFingerprint(b[:0], sp, epMap[sp])
		fps[key] += string(b)
	}
	addrType := discoveryv1.AddressTypeIPv4
	if p.opts.Family == kubeproxy.IPv6 {
		addrType = discoveryv1.AddressTypeIPv6
	}
	type sliceHash struct{ name, hash string }
	bySvc := map[string][]sliceHash{}
	for _, es := range objs.EndpointSlices {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if es.AddressType != addrType || svc == "" || es.Namespace == "" || es.Name == "" {
			continue
		}
		js, err := json.Marshal(es)
		if err != nil {
			js = []byte(fmt.Sprintf("%#v", es))
		}
		h := sha256.Sum256(js)
		key := es.Namespace + "/" + svc
		bySvc[key] = append(bySvc[key], sliceHash{es.Name, string(h[:])})
	}
	for key, hs := range bySvc {
		sort.Slice(hs, func(i, j int) bool { return hs[i].name < hs[j].name })
		var sb strings.Builder
		sb.WriteString(fps[key])
		for _, h := range hs {
			sb.WriteString("|slice ")
			sb.WriteString(h.name)
			sb.WriteByte(' ')
			sb.WriteString(h.hash)
		}
		fps[key] = sb.String()
	}
	return out, fps
}

// appendFingerprint encodes everything of a service port and its endpoints that the rules
// depend on (what upstream's change trackers compare).
func appendFingerprint(b []byte, sp *kubeproxy.ServicePort, eps []*kubeproxy.Endpoint) []byte {
	b = append(b, sp.NameString...)
	b = append(b, '|')
	b = append(b, sp.Protocol...)
	b = append(b, '|')
	b = sp.ClusterIP.AppendTo(b)
	b = strconv.AppendInt(append(b, '|'), int64(sp.Port), 10)
	b = strconv.AppendInt(append(b, '|'), int64(sp.NodePort), 10)
	b = strconv.AppendInt(append(b, '|'), int64(sp.HealthCheckNodePort), 10)
	for _, a := range sp.ExternalIPs {
		b = a.AppendTo(append(b, ",e"...))
	}
	for _, a := range sp.LoadBalancerVIPs {
		b = a.AppendTo(append(b, ",l"...))
	}
	for _, a := range sp.SourceRanges {
		b = a.AppendTo(append(b, ",s"...))
	}
	b = strconv.AppendBool(append(b, '|'), sp.AffinityClientIP)
	b = strconv.AppendInt(append(b, '|'), int64(sp.StickySeconds), 10)
	b = strconv.AppendBool(append(b, '|'), sp.ExternalPolicyLocal)
	b = strconv.AppendBool(append(b, '|'), sp.InternalPolicyLocal)
	for _, e := range eps {
		b = append(b, ';')
		b = append(b, e.String()...)
		for _, f := range []bool{e.Local, e.Ready, e.Serving, e.Terminating} {
			if f {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
		}
		for _, z := range e.ZoneHints {
			b = append(append(b, ",z"...), z...)
		}
		for _, n := range e.NodeHints {
			b = append(append(b, ",n"...), n...)
		}
	}
	return append(b, '\n')
}

// Sync runs one syncProxyRules() against objs (the full desired state) and returns the
// iptables-restore input kube-proxy would write (`iptables-restore --noflush --counters`).
// The first call, every call after ForceFullSync or RestoreFailed, and every FullSyncEvery-th
// call are full syncs; the others are partial. Sync assumes the restore succeeds (call
// RestoreFailed otherwise).
//
// Equivalent to: `iptables-restore -w 5 --noflush --counters` fed the returned bytes, as
// kube-proxy's syncProxyRules() does (after, on a full sync, the `iptables -N`/`-I` calls of
// NodeSetup).
func (p *Proxier) Sync(objs cluster.Objects) ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	p.syncs++
	// v1.35 forces the periodic full sync in large clusters too (1.37 stopped doing that).
	doFull := p.needFullSync ||
		(p.opts.FullSyncEvery > 0 && p.syncs%p.opts.FullSyncEvery == 0)
	ports, fps := p.state(objs)
	changed := map[string]bool{}
	if !doFull {
		for k, v := range fps {
			if p.fingerprints[k] != v {
				changed[k] = true
			}
		}
		for k := range p.fingerprints {
			if _, ok := fps[k]; !ok {
				changed[k] = true
			}
		}
	}
	out := p.build(ports, doFull, changed)
	p.fingerprints = fps
	p.needFullSync = false
	return out, nil
}

// build is syncProxyRules() from "Reset all buffers" to the restore data.
func (p *Proxier) build(ports []portEndpoints, doFull bool, changed map[string]bool) []byte {
	o := &p.opts
	isIPv6 := o.Family == kubeproxy.IPv6
	var filterChains, filterRules, natChains, natRules, skipped lineBuffer
	skipped.discard = true
	nEps := 0
	for _, pe := range ports {
		nEps += len(pe.eps)
	}
	if doFull {
		// Pre-size for a full sync: about 5 nat lines of ~150 bytes per endpoint.
		natRules.b.Grow(256*len(ports) + 700*nEps)
		natChains.b.Grow(40*len(ports) + 40*nEps)
	}

	for _, c := range []string{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall} {
		filterChains.chainLine(c)
	}
	for _, c := range []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq} {
		natChains.chainLine(c)
	}
	mm := p.mark + "/" + p.mark
	natRules.write("-A", ChainPostrouting, "-m", "mark", "!", "--mark", mm, "-j", "RETURN")
	natRules.write("-A", ChainPostrouting, "-j", "MARK", "--xor-mark", p.mark)
	if o.RandomFully {
		natRules.write("-A", ChainPostrouting, "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE", "--random-fully")
	} else {
		natRules.write("-A", ChainPostrouting, "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE")
	}
	natRules.write("-A", ChainMarkMasq, "-j", "MARK", "--or-mark", p.mark)
	if !isIPv6 && o.LocalhostNodePorts {
		filterChains.chainLine(ChainKubeletFirewall)
		filterRules.write("-A", ChainKubeletFirewall, "-m", "comment", "--comment", `"block incoming localnet connections"`,
			"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
	}

	active := make(map[string]bool, len(ports)*2+nEps)
	p.largeCluster = nEps > o.LargeClusterThreshold
	nodeIP := o.nodeIP()
	nfacct := o.NFAcct

	for _, pe := range ports {
		sp := pe.sp
		proto := sp.Protocol
		spn := sp.NameString
		ch := p.chains(sp)
		clusterEPs, localEPs, reachable, hasEndpoints := kubeproxy.CategorizeEndpoints(pe.eps, sp, o.NodeName, o.NodeZone)

		usesClusterPolicyChain := len(clusterEPs) > 0 && sp.UsesClusterEndpoints()
		usesLocalPolicyChain := len(localEPs) > 0 && sp.UsesLocalEndpoints()
		internalTrafficChain := ch.svc
		hasInternalEndpoints := hasEndpoints
		if sp.InternalPolicyLocal {
			internalTrafficChain = ch.svl
			if len(localEPs) == 0 {
				hasInternalEndpoints = false
			}
		}
		externalPolicyChain := ch.svc
		hasExternalEndpoints := hasEndpoints
		if sp.ExternalPolicyLocal {
			externalPolicyChain = ch.svl
			if len(localEPs) == 0 {
				hasExternalEndpoints = false
			}
		}
		usesExternalTrafficChain := hasEndpoints && sp.ExternallyAccessible()
		lbTrafficChain := ch.ext
		usesFWChain := hasEndpoints && len(sp.LoadBalancerVIPs) > 0 && len(sp.SourceRanges) > 0
		if usesFWChain {
			lbTrafficChain = ch.fw
		}
		var intTarget, intComment, extTarget, extComment string
		if !hasEndpoints {
			intTarget, intComment = "REJECT", `"`+spn+` has no endpoints"`
			extTarget, extComment = intTarget, intComment
		} else {
			if !hasInternalEndpoints {
				intTarget, intComment = "DROP", `"`+spn+` has no local endpoints"`
			}
			if !hasExternalEndpoints {
				extTarget, extComment = "DROP", `"`+spn+` has no local endpoints"`
			}
		}
		port := strconv.Itoa(sp.Port)
		cip := sp.ClusterIP.String()

		if hasInternalEndpoints {
			natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+spn+` cluster IP"`,
				"-m", proto, "-p", proto, "-d", cip, "--dport", port, "-j", internalTrafficChain)
		} else {
			filterRules.write("-A", ChainServices, "-m", "comment", "--comment", intComment,
				"-m", proto, "-p", proto, "-d", cip, "--dport", port, "-j", intTarget)
		}
		for _, eip := range sp.ExternalIPs {
			if hasEndpoints {
				natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+spn+` external IP"`,
					"-m", proto, "-p", proto, "-d", eip.String(), "--dport", port, "-j", ch.ext)
			}
			if !hasExternalEndpoints {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", eip.String(), "--dport", port, "-j", extTarget)
			}
		}
		for _, lb := range sp.LoadBalancerVIPs {
			if hasEndpoints {
				natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"`+spn+` loadbalancer IP"`,
					"-m", proto, "-p", proto, "-d", lb.String(), "--dport", port, "-j", lbTrafficChain)
			}
			if usesFWChain {
				filterRules.write("-A", ChainProxyFirewall, "-m", "comment", "--comment", `"`+spn+` traffic not accepted by `+ch.fw+`"`,
					"-m", proto, "-p", proto, "-d", lb.String(), "--dport", port, "-j", "DROP")
			}
		}
		if !hasExternalEndpoints {
			for _, lb := range sp.LoadBalancerVIPs {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", lb.String(), "--dport", port, "-j", extTarget)
			}
		}
		if sp.NodePort != 0 {
			np := strconv.Itoa(sp.NodePort)
			if hasEndpoints {
				if o.LocalhostNodePorts && !isIPv6 && nfacct {
					natRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", spn,
						"-m", proto, "-p", proto, "-d", "127.0.0.0/8", "--dport", np,
						"-m", "nfacct", "--nfacct-name", NFAcctLocalhostNodePorts, "-j", ch.ext)
				}
				natRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", spn,
					"-m", proto, "-p", proto, "--dport", np, "-j", ch.ext)
			}
			if !hasExternalEndpoints {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", np, "-j", extTarget)
			}
		}
		if sp.HealthCheckNodePort != 0 {
			filterRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", `"`+spn+` health check node port"`,
				"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(sp.HealthCheckNodePort), "-j", "ACCEPT")
		}

		nc, nr := &natChains, &natRules
		if !doFull && !changed[sp.Name.Namespace+"/"+sp.Name.Name] {
			nc, nr = &skipped, &skipped
		}

		if hasInternalEndpoints {
			if o.MasqueradeAll {
				nr.write("-A", internalTrafficChain, "-m", "comment", "--comment", `"`+spn+` cluster IP"`,
					"-m", proto, "-p", proto, "-d", cip, "--dport", port, "-j", ChainMarkMasq)
			} else if o.LocalDetector.IsImplemented() {
				nr.writeArgs([]string{"-A", internalTrafficChain, "-m", "comment", "--comment", `"` + spn + ` cluster IP"`,
					"-m", proto, "-p", proto, "-d", cip, "--dport", port}, o.LocalDetector.IfNotLocal(), []string{"-j", ChainMarkMasq})
			}
		}
		if usesExternalTrafficChain {
			nc.chainLine(ch.ext)
			active[ch.ext] = true
			if !sp.ExternalPolicyLocal {
				nr.write("-A", ch.ext, "-m", "comment", "--comment", `"masquerade traffic for `+spn+` external destinations"`, "-j", ChainMarkMasq)
			} else {
				if o.LocalDetector.IsImplemented() {
					nr.writeArgs([]string{"-A", ch.ext, "-m", "comment", "--comment", `"pod traffic for ` + spn + ` external destinations"`},
						o.LocalDetector.IfLocal(), []string{"-j", ch.svc})
				}
				nr.write("-A", ch.ext, "-m", "comment", "--comment", `"masquerade LOCAL traffic for `+spn+` external destinations"`,
					"-m", "addrtype", "--src-type", "LOCAL", "-j", ChainMarkMasq)
				nr.write("-A", ch.ext, "-m", "comment", "--comment", `"route LOCAL traffic for `+spn+` external destinations"`,
					"-m", "addrtype", "--src-type", "LOCAL", "-j", ch.svc)
			}
			if hasExternalEndpoints {
				nr.write("-A", ch.ext, "-j", externalPolicyChain)
			}
		}
		if usesFWChain {
			nc.chainLine(ch.fw)
			active[ch.fw] = true
			allowFromNode := false
			for _, cidr := range sp.SourceRanges {
				nr.write("-A", ch.fw, "-m", "comment", "--comment", `"`+spn+` loadbalancer IP"`, "-s", cidr.String(), "-j", ch.ext)
				if nodeIP.IsValid() && cidr.Contains(nodeIP) {
					allowFromNode = true
				}
			}
			if allowFromNode {
				for _, lb := range sp.LoadBalancerVIPs {
					nr.write("-A", ch.fw, "-m", "comment", "--comment", `"`+spn+` loadbalancer IP"`, "-s", lb.String(), "-j", ch.ext)
				}
			}
			nr.write("-A", ch.fw, "-m", "comment", "--comment", `"other traffic to `+spn+` will be dropped by KUBE-PROXY-FIREWALL"`)
		}
		if usesClusterPolicyChain {
			nc.chainLine(ch.svc)
			active[ch.svc] = true
			p.writeServiceToEndpointRules(nr, sp, ch.svc, clusterEPs)
		}
		if usesLocalPolicyChain {
			nc.chainLine(ch.svl)
			active[ch.svl] = true
			p.writeServiceToEndpointRules(nr, sp, ch.svl, localEPs)
		}
		for _, ep := range reachable {
			sep := p.sepChain(sp, ep)
			nc.chainLine(sep)
			active[sep] = true
			epIP := ep.IP.String()
			if p.largeCluster {
				nr.write("-A", sep, "-s", epIP, "-j", ChainMarkMasq)
				if sp.AffinityClientIP {
					nr.write("-A", sep, "-m", "recent", "--name", sep, "--set", "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())
				} else {
					nr.write("-A", sep, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())
				}
			} else {
				nr.write("-A", sep, "-m", "comment", "--comment", spn, "-s", epIP, "-j", ChainMarkMasq)
				if sp.AffinityClientIP {
					nr.write("-A", sep, "-m", "comment", "--comment", spn, "-m", "recent", "--name", sep, "--set", "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())
				} else {
					nr.write("-A", sep, "-m", "comment", "--comment", spn, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())
				}
			}
		}
	}

	// Stale chains: what the node has (as recorded) minus what is active. Upstream skips this
	// scan in large-cluster mode when it ran less than syncPeriod ago; knet has no clock and
	// scans on every sync.
	var stale []string
	for c := range p.existing {
		if !active[c] && IsServiceChain(c) {
			stale = append(stale, c)
		}
	}
	sort.Strings(stale)
	for _, c := range stale {
		natChains.chainLine(c)
		natRules.write("-X", c)
	}

	if o.NodePortAddresses == nil {
		args := []string{"-A", ChainServices, "-m", "comment", "--comment", `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`,
			"-m", "addrtype", "--dst-type", "LOCAL"}
		if isIPv6 {
			args = append(args, "!", "-d", "::1/128")
		} else if !o.LocalhostNodePorts {
			args = append(args, "!", "-d", "127.0.0.0/8")
		}
		natRules.writeArgs(args, []string{"-j", ChainNodePorts})
	} else {
		for _, ip := range p.nodePortIPs() {
			if ip.IsLoopback() && (isIPv6 || !o.LocalhostNodePorts) {
				continue
			}
			natRules.write("-A", ChainServices, "-m", "comment", "--comment", `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`,
				"-d", ip.String(), "-j", ChainNodePorts)
		}
	}
	if !o.ConntrackTCPLiberal {
		if o.NFAcct {
			filterRules.write("-A", ChainForward, "-m", "conntrack", "--ctstate", "INVALID", "-m", "nfacct", "--nfacct-name", NFAcctInvalidDropped, "-j", "DROP")
		} else {
			filterRules.write("-A", ChainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
		}
	}
	filterRules.write("-A", ChainForward, "-m", "comment", "--comment", `"kubernetes forwarding rules"`, "-m", "mark", "--mark", mm, "-j", "ACCEPT")
	filterRules.write("-A", ChainForward, "-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	// The node's nat chains after this restore (assuming it succeeds).
	p.previous = p.existing
	p.existing = active

	var out bytes.Buffer
	out.Grow(filterChains.b.Len() + filterRules.b.Len() + natChains.b.Len() + natRules.b.Len() + 32)
	out.WriteString("*filter\n")
	out.Write(filterChains.b.Bytes())
	out.Write(filterRules.b.Bytes())
	out.WriteString("COMMIT\n*nat\n")
	out.Write(natChains.b.Bytes())
	out.Write(natRules.b.Bytes())
	out.WriteString("COMMIT\n")
	return out.Bytes()
}

// nodePortIPs are the node IPs of the family inside NodePortAddresses, in NodeIPs order
// (upstream: GetNodeIPs over the interfaces), with 127.0.0.1 considered when allowed.
func (p *Proxier) nodePortIPs() []netip.Addr {
	o := &p.opts
	cands := append([]netip.Addr(nil), o.NodeIPs...)
	if o.Family == kubeproxy.IPv4 {
		cands = append([]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, cands...)
	} else {
		cands = append([]netip.Addr{netip.IPv6Loopback()}, cands...)
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, ip := range cands {
		if kubeproxy.FamilyOf(ip) != o.Family || seen[ip] {
			continue
		}
		for _, pfx := range o.NodePortAddresses {
			if pfx.Contains(ip) {
				out = append(out, ip)
				seen[ip] = true
				break
			}
		}
	}
	return out
}

func (p *Proxier) writeServiceToEndpointRules(nr *lineBuffer, sp *kubeproxy.ServicePort, chain string, eps []*kubeproxy.Endpoint) {
	if sp.AffinityClientIP {
		secs := strconv.Itoa(sp.StickySeconds)
		for _, ep := range eps {
			sep := p.sepChain(sp, ep)
			if p.largeCluster {
				nr.write("-A", chain, "-m", "recent", "--name", sep, "--rcheck", "--seconds", secs, "--reap", "-j", sep)
			} else {
				nr.write("-A", chain, "-m", "comment", "--comment", `"`+sp.NameString+` -> `+ep.String()+`"`,
					"-m", "recent", "--name", sep, "--rcheck", "--seconds", secs, "--reap", "-j", sep)
			}
		}
	}
	n := len(eps)
	for i, ep := range eps {
		sep := p.sepChain(sp, ep)
		nr.begin("-A", chain)
		if !p.largeCluster {
			nr.words("-m", "comment", "--comment")
			nr.quoted(sp.NameString, " -> ", ep.String())
		}
		if i < n-1 {
			nr.words("-m", "statistic", "--mode", "random", "--probability", p.probability(n-i))
		}
		nr.words("-j", sep)
		nr.end()
	}
}
