package oracle

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/kubeproxy"
	knetiptables "github.com/knet-dev/knet/render/kubeproxy/iptables"
	"github.com/knet-dev/knet/trace"
)

var flowScenariosFlag = flag.Int("flow-scenarios", 150, "number of random scenarios for the packet-flow check")

// TestRandomFlowsMatchObjects is the second, semantic target. The upstream packet tracer
// lives in a _test.go file of k8s.io/kubernetes and cannot be imported, so instead of
// comparing tracers this test renders each random scenario with knet, traces packets
// through the resulting iptables ruleset with knet's trace package (netfilter hooks in
// kernel order), and checks the outcome against what the Kubernetes objects say by
// construction, computed here independently of knet's renderer:
//
//   - the DNAT destinations are exactly the endpoints the traffic policy selects (ready
//     endpoints, else serving-and-terminating ones; only this node's for a Local policy),
//     each with probability 1/n;
//   - no usable endpoints: REJECT when the Service has none anywhere, DROP when a Local
//     policy finds none on this node; a LoadBalancer IP with loadBalancerSourceRanges
//     DROPs clients outside the ranges; an ipMode Proxy LoadBalancer IP is not captured;
//   - masquerading as kube-proxy decides it: ClusterIP traffic from outside the pod
//     network is masqueraded when masqueradeAll is set or a local-traffic detector is
//     configured; NodePort, external and LoadBalancer IP traffic is masqueraded with
//     externalTrafficPolicy Cluster and not with Local.
//
// Each flow is traced through knet's rendered rules and, as a check of the model itself,
// through the rules upstream kube-proxy v1.37.2 writes for the same objects.
//
// Packets are the first packet of a connection from an external client arriving on eth0.
// Topology hints and the node zone are left out of these scenarios (the model here does
// not implement topology-aware routing; TestRandomScenariosMatchKubeProxy covers them).
func TestRandomFlowsMatchObjects(t *testing.T) {
	failed, flows := 0, 0
	for i := 1; i <= *flowScenariosFlag; i++ {
		seed := uint64(i) * 0x2545f4914f6cdd1d
		if *seedFlag != 0 {
			if i > 1 {
				break
			}
			seed = *seedFlag
		}
		sc := NewScenario(seed, 1, GenOptions{NoTopology: true})
		n, err := checkFlows(sc)
		flows += n
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("scenario -seed=%d: %v", seed, err)
			}
		}
	}
	if failed > 5 {
		t.Errorf("%d scenarios have flows that disagree (first 5 shown)", failed)
	}
	if flows == 0 {
		t.Fatal("no flows were traced")
	}
	t.Logf("%d flows traced", flows)
}

// want is the expected outcome of one flow.
type want struct {
	dnat       []string // sorted "IP:port"
	verdict    netfilter.Decision
	masquerade bool
}

type modelEndpoint struct {
	addr                               netip.AddrPort
	ready, serving, terminating, local bool
}

// modelEndpoints returns the endpoints of svc's port sp from the slices, as the
// EndpointSlice API defines them (ready defaults to true, serving to ready).
func modelEndpoints(cfg Config, svc *corev1.Service, sp corev1.ServicePort, slices []*discoveryv1.EndpointSlice) []modelEndpoint {
	at := discoveryv1.AddressTypeIPv4
	if cfg.Family == corev1.IPv6Protocol {
		at = discoveryv1.AddressTypeIPv6
	}
	seen := map[netip.AddrPort]bool{}
	var out []modelEndpoint
	for _, s := range slices {
		if s.Namespace != svc.Namespace || s.Labels[discoveryv1.LabelServiceName] != svc.Name || s.AddressType != at {
			continue
		}
		for _, p := range s.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if p.Name == nil || *p.Name != sp.Name || proto != sp.Protocol || p.Port == nil || *p.Port == 0 {
				continue
			}
			for _, e := range s.Endpoints {
				ip := netip.MustParseAddr(e.Addresses[0])
				ap := netip.AddrPortFrom(ip, uint16(*p.Port))
				if seen[ap] {
					continue
				}
				seen[ap] = true
				me := modelEndpoint{addr: ap, ready: e.Conditions.Ready == nil || *e.Conditions.Ready}
				me.serving = me.ready
				if e.Conditions.Serving != nil {
					me.serving = *e.Conditions.Serving
				}
				me.terminating = e.Conditions.Terminating != nil && *e.Conditions.Terminating
				me.local = e.NodeName != nil && *e.NodeName == cfg.NodeName
				out = append(out, me)
			}
		}
	}
	return out
}

// selectEndpoints returns the ready endpoints accepted by keep, else the serving and
// terminating ones.
func selectEndpoints(eps []modelEndpoint, keep func(modelEndpoint) bool) []string {
	var ready, fallback []string
	for _, e := range eps {
		if !keep(e) {
			continue
		}
		if e.ready {
			ready = append(ready, e.addr.String())
		} else if e.serving && e.terminating {
			fallback = append(fallback, e.addr.String())
		}
	}
	if len(ready) == 0 {
		ready = fallback
	}
	sort.Strings(ready)
	return ready
}

type flowCase struct {
	name string
	req  trace.Request
	want want
}

// expectedFlows lists the flows of scenario sc's first state and their expected outcome.
func expectedFlows(sc Scenario) []flowCase {
	cfg, st := sc.Config, sc.States[0]
	v6 := cfg.Family == corev1.IPv6Protocol
	client, outside := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.200")
	if v6 {
		client, outside = netip.MustParseAddr("2001:db8:113::7"), netip.MustParseAddr("2001:db8:114::7")
	}
	detector := cfg.Detector != DetectNone && cfg.Detector != ""
	var out []flowCase
	for _, svc := range st.Services {
		s := svc.Spec
		if s.Type == corev1.ServiceTypeExternalName || s.ClusterIP == corev1.ClusterIPNone || s.ClusterIP == "" {
			continue
		}
		for _, sp := range s.Ports {
			eps := modelEndpoints(cfg, svc, sp, st.EndpointSlices)
			cluster := selectEndpoints(eps, func(modelEndpoint) bool { return true })
			local := selectEndpoints(eps, func(e modelEndpoint) bool { return e.local })
			hasAny := len(cluster) > 0
			proto := trace.Protocol(strings.ToLower(string(sp.Protocol)))
			name := fmt.Sprintf("%s/%s:%s/%s", svc.Namespace, svc.Name, sp.Name, proto)
			noEndpoints := func(policyLocal bool) want {
				switch {
				case !hasAny:
					return want{verdict: netfilter.DecisionReject}
				case policyLocal:
					return want{verdict: netfilter.DecisionDrop}
				}
				panic("unreachable")
			}
			outcome := func(policyLocal, masq bool) want {
				eps := cluster
				if policyLocal {
					eps = local
				}
				if len(eps) == 0 {
					return noEndpoints(policyLocal)
				}
				return want{dnat: eps, verdict: netfilter.DecisionAccept, masquerade: masq}
			}
			req := func(dst netip.Addr, port int32, src netip.Addr) trace.Request {
				return trace.Request{Src: src, Dst: dst, Proto: proto, DPort: uint16(port), InIface: "eth0"}
			}
			iLocal := s.InternalTrafficPolicy != nil && *s.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
			eLocal := s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
			out = append(out, flowCase{name + " cluster IP", req(netip.MustParseAddr(s.ClusterIP), sp.Port, client), outcome(iLocal, cfg.MasqueradeAll || detector)})
			if sp.NodePort != 0 && len(cfg.NodePortAddresses) == 0 {
				out = append(out, flowCase{name + " node port", req(cfg.NodeIP, sp.NodePort, client), outcome(eLocal, !eLocal)})
			}
			for _, e := range s.ExternalIPs {
				out = append(out, flowCase{name + " external IP " + e, req(netip.MustParseAddr(e), sp.Port, client), outcome(eLocal, !eLocal)})
			}
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				lb := netip.MustParseAddr(ing.IP)
				if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
					out = append(out, flowCase{name + " proxy-mode LB IP " + ing.IP, req(lb, sp.Port, client), want{verdict: "", dnat: nil}})
					continue
				}
				out = append(out, flowCase{name + " LB IP " + ing.IP, req(lb, sp.Port, client), outcome(eLocal, !eLocal)})
				if len(s.LoadBalancerSourceRanges) > 0 {
					w := want{verdict: netfilter.DecisionDrop}
					if !hasAny {
						w.verdict = netfilter.DecisionReject
					}
					out = append(out, flowCase{name + " LB IP " + ing.IP + " from outside the source ranges", req(lb, sp.Port, outside), w})
				}
			}
		}
	}
	return out
}

// upstreamRuleset is the ruleset upstream kube-proxy's first sync of sc leaves on a node
// prepared as knet's NodeSetup prepares it (kubelet's and kube-proxy's jump rules).
func upstreamRuleset(sc Scenario) (*netfilter.Ruleset, error) {
	up, err := NewUpstream(sc.Config)
	if err != nil {
		return nil, err
	}
	up.Apply(State{}, sc.States[0])
	restore, err := up.Sync()
	if err != nil {
		return nil, err
	}
	fam, kfam := netfilter.IPv4, kubeproxy.IPv4
	if sc.Config.Family == corev1.IPv6Protocol {
		fam, kfam = netfilter.IPv6, kubeproxy.IPv6
	}
	rs := &netfilter.Ruleset{Family: fam}
	if err := iptablessave.Restore(rs, bytes.NewReader(knetiptables.NodeSetup(kfam)), "node-setup", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		return nil, fmt.Errorf("node setup: %w", err)
	}
	if err := iptablessave.Restore(rs, bytes.NewReader(restore), "upstream-restore", iptablessave.RestoreOptions{NoFlush: true, Counters: true}); err != nil {
		return nil, fmt.Errorf("upstream restore input: %w", err)
	}
	return rs, nil
}

// checkFlows traces every expected flow of sc through the ruleset knet renders and
// through the one upstream kube-proxy writes, and compares both with the expectation.
func checkFlows(sc Scenario) (int, error) {
	opts, err := KnetOptions(sc.Config)
	if err != nil {
		return 0, err
	}
	st := sc.States[0]
	knetRS, err := knetiptables.RenderRuleset(cluster.Objects{Services: st.Services, EndpointSlices: st.EndpointSlices}, opts)
	if err != nil {
		return 0, fmt.Errorf("render: %w", err)
	}
	upRS, err := upstreamRuleset(sc)
	if err != nil {
		return 0, err
	}
	n, errK := traceFlows(sc, knetRS)
	_, errU := traceFlows(sc, upRS)
	switch {
	case errK != nil && errU != nil:
		return n, fmt.Errorf("knet's rules: %w\nupstream's rules: %w", errK, errU)
	case errK != nil:
		return n, fmt.Errorf("knet's rules: %w", errK)
	case errU != nil:
		return n, fmt.Errorf("upstream's rules: %w", errU)
	}
	return n, nil
}

func traceFlows(sc Scenario, rs *netfilter.Ruleset) (int, error) {
	var err error
	var addrs []netip.Addr
	for _, p := range sc.Config.HostAddrs {
		addrs = append(addrs, p.Addr())
	}
	var node *trace.Node
	if sc.Config.Family == corev1.IPv6Protocol {
		node, err = trace.NewNode("test-node", nil, rs, netfilter.NewLocalAddrs(addrs...))
	} else {
		node, err = trace.NewNode("test-node", rs, nil, netfilter.NewLocalAddrs(addrs...))
	}
	if err != nil {
		return 0, fmt.Errorf("trace node: %w", err)
	}
	var errs []string
	flows := expectedFlows(sc)
	for _, f := range flows {
		res, err := trace.TraceBrief(node, f.req)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f.name, err))
			continue
		}
		if msg := compareFlow(f.want, res); msg != "" {
			errs = append(errs, fmt.Sprintf("%s (%s %s -> %s:%d, config %+v): %s", f.name, f.req.Proto, f.req.Src, f.req.Dst, f.req.DPort, sc.Config, msg))
		}
	}
	if len(errs) > 0 {
		return len(flows), fmt.Errorf("%d of %d flows:\n%s", len(errs), len(flows), strings.Join(errs, "\n"))
	}
	return len(flows), nil
}

func compareFlow(w want, res *trace.Result) string {
	var got []string
	for _, d := range res.DNAT {
		got = append(got, d.To)
	}
	sort.Strings(got)
	if d := cmp.Diff(w.dnat, got); d != "" {
		return fmt.Sprintf("DNAT destinations (-want +got):\n%s", d)
	}
	for _, d := range res.DNAT {
		if p := 1 / float64(len(w.dnat)); math.Abs(d.Probability-p) > 1e-6 {
			return fmt.Sprintf("DNAT to %s has probability %v, want %v", d.To, d.Probability, p)
		}
	}
	if w.verdict == "" {
		return "" // not captured by kube-proxy: routing decides
	}
	if res.Verdict != w.verdict || res.VerdictVaries {
		return fmt.Sprintf("verdict %s (varies %v), want %s", res.Verdict, res.VerdictVaries, w.verdict)
	}
	if w.verdict == netfilter.DecisionAccept && (res.Masquerade != w.masquerade || res.MasqueradeVaries) {
		return fmt.Sprintf("masquerade %v (varies %v), want %v", res.Masquerade, res.MasqueradeVaries, w.masquerade)
	}
	return ""
}
