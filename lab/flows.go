//go:build linux

package lab

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/trace"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FalseAlarm is the chi-square test's false-alarm rate: a spread is called wrong only when
// a spread at least this uneven would happen by chance less than once in 10,000 runs.
const FalseAlarm = 1e-4

// Flow is one kind of connection the lab sends, Count times.
type Flow struct {
	Name string `json:"name"`
	// From is "namespace/pod", a node name, or "outside".
	From string `json:"from"`
	// To is the destination; Service names the Service ("ns/name:port") when it is one.
	To      netip.AddrPort `json:"to"`
	Service string         `json:"service,omitempty"`
	// Kind is tcp, http, udp or dns.
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// Prediction is what the model says about a flow.
type Prediction struct {
	// Source is "trace" (package trace's cluster trace) or "objects" (the EndpointSlices,
	// where trace cannot take the flow's source).
	Source string `json:"source"`
	// Endpoints maps each answering pod to its probability.
	Endpoints map[string]float64 `json:"endpoints"`
	// Masquerade maps each pod to whether its connections are source-NATed.
	Masquerade map[string]bool `json:"masquerade"`
	// NoSpread says the model predicts no distribution over the endpoints (a hashing IPVS
	// scheduler sends a client's connections to one server), so no chi-square test.
	NoSpread bool `json:"noSpread,omitempty"`
	// EncapByPod, when set, lists the tunnels per endpoint (IPVS flows): only the answering
	// endpoints' tunnels must move.
	EncapByPod map[string][]string `json:"encapByPod,omitempty"`
	// Encap lists the tunnel devices the request or its reply crosses ("node:tunl0").
	Encap []string `json:"encap,omitempty"`
	Error string   `json:"error,omitempty"`
}

// Outcome is what the kernel did with a flow.
type Outcome struct {
	Flow       Flow           `json:"flow"`
	ClientIP   netip.Addr     `json:"clientIP"`
	Answers    map[string]int `json:"answers"`
	Sources    map[string]int `json:"sources"` // source address seen -> count
	Failures   int            `json:"failures"`
	FirstError string         `json:"firstError,omitempty"`
	// Crossed are the interfaces whose packet counters moved ("ns:dev +N").
	Crossed    []string   `json:"crossed"`
	Predicted  Prediction `json:"predicted"`
	ChiSquare  float64    `json:"chiSquare,omitempty"`
	PValue     float64    `json:"pValue,omitempty"`
	Agreements []string   `json:"agreements"`
	// Disagreements are where kernel and model differ: each one is a finding.
	Disagreements []string      `json:"disagreements"`
	Duration      time.Duration `json:"duration"`

	// IPVS is the connection-by-connection check of a deterministic IPVS scheduler.
	IPVS *IPVSCheck `json:"ipvs,omitempty"`
}

// IPVSCheck compares the real server of every connection with the model's scheduler.
type IPVSCheck struct {
	Node       string   `json:"node"`
	Scheduler  string   `json:"scheduler"`
	Checked    int      `json:"checked"`
	Mismatches int      `json:"mismatches"`
	Model      []string `json:"model"`   // the model's sequence of pods
	Kernel     []string `json:"kernel"`  // the kernel's
	Clients    []string `json:"clients"` // each connection's client address
}

// SeedFlows are the seed document's flows on cluster c: pod → ClusterIP, pod → pod across
// subnets, node → Service, outside → NodePort and DNS to CoreDNS over UDP; then extra
// flows pod → Service drawn at random with seed. n scales the connection counts.
func SeedFlows(c *cluster.Cluster, n int, extra int, seed uint64) []Flow {
	if n <= 0 {
		n = 1
	}
	svc, port := busiestService(c)
	client := clientPod(c)
	var flows []Flow
	if svc != nil && client != nil {
		flows = append(flows, Flow{Name: "pod → ClusterIP", From: key(client), To: netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), uint16(port.Port)),
			Service: fmt.Sprintf("%s/%s:%d", svc.Namespace, svc.Name, port.Port), Kind: kindFor(port), Count: 60 * n})
		if dst := podAcrossSubnet(c, client, svc); dst != nil {
			if tp := containerPort(dst, port); tp != 0 {
				flows = append(flows, Flow{Name: "pod → pod across subnets", From: key(client), To: netip.AddrPortFrom(netip.MustParseAddr(dst.Status.PodIP), uint16(tp)), Kind: "tcp", Count: 5 * n})
			}
		}
		if node := nodeAcrossSubnet(c, client); node != nil {
			flows = append(flows, Flow{Name: "node → Service", From: node.Name, To: netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), uint16(port.Port)),
				Service: fmt.Sprintf("%s/%s:%d", svc.Namespace, svc.Name, port.Port), Kind: kindFor(port), Count: 30 * n})
		}
		if port.NodePort != 0 {
			node := c.Nodes[len(c.Nodes)-1]
			flows = append(flows, Flow{Name: "outside → NodePort", From: "outside", To: netip.AddrPortFrom(node.IP, uint16(port.NodePort)),
				Service: fmt.Sprintf("%s/%s:%d", svc.Namespace, svc.Name, port.Port), Kind: kindFor(port), Count: 30 * n})
		}
	}
	if dns := findService(c, "kube-system", "kube-dns"); dns != nil && client != nil {
		for _, p := range dns.Spec.Ports {
			if p.Protocol == corev1.ProtocolUDP {
				flows = append(flows, Flow{Name: "DNS to CoreDNS (UDP)", From: key(client), To: netip.AddrPortFrom(netip.MustParseAddr(dns.Spec.ClusterIP), uint16(p.Port)),
					Service: fmt.Sprintf("%s/%s:%d", dns.Namespace, dns.Name, p.Port), Kind: "dns", Count: 20 * n})
				break
			}
		}
	}
	// Random flows: a random pod (or node) to a random Service port with endpoints.
	r := rand.New(rand.NewPCG(seed, seed^0x6b6e6574))
	var targets []Flow
	for _, s := range c.Objects.Services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, p := range s.Spec.Ports {
			if len(endpointsOf(c, s, p)) == 0 || (p.Protocol != corev1.ProtocolTCP && p.Protocol != corev1.ProtocolUDP && p.Protocol != "") {
				continue
			}
			targets = append(targets, Flow{To: netip.AddrPortFrom(netip.MustParseAddr(s.Spec.ClusterIP), uint16(p.Port)),
				Service: fmt.Sprintf("%s/%s:%d", s.Namespace, s.Name, p.Port), Kind: kindFor(p)})
		}
	}
	var sources []string
	for _, p := range c.Objects.Pods {
		if !p.Spec.HostNetwork && p.Spec.NodeName != "" {
			sources = append(sources, key(p))
		}
	}
	for _, nd := range c.Nodes {
		sources = append(sources, nd.Name)
	}
	sort.Strings(sources)
	for i := 0; i < extra && len(targets) > 0 && len(sources) > 0; i++ {
		f := targets[r.IntN(len(targets))]
		f.From = sources[r.IntN(len(sources))]
		f.Name = fmt.Sprintf("random #%d (seed %d)", i+1, seed)
		f.Count = 20 * n
		flows = append(flows, f)
	}
	return flows
}

func kindFor(p corev1.ServicePort) string {
	if p.Protocol == corev1.ProtocolUDP {
		if p.Port == 53 {
			return "dns"
		}
		return "udp"
	}
	if p.Name == "http" || p.Port == 80 || (p.AppProtocol != nil && *p.AppProtocol == "http") {
		return "http"
	}
	return "tcp"
}

func key(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func findService(c *cluster.Cluster, ns, name string) *corev1.Service {
	for _, s := range c.Objects.Services {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

// endpointsOf returns the ready endpoint pods of a Service port ("ns/name"), sorted.
func endpointsOf(c *cluster.Cluster, s *corev1.Service, p corev1.ServicePort) []string {
	seen := map[string]bool{}
	for _, es := range c.Objects.EndpointSlices {
		if es.Namespace != s.Namespace || es.Labels["kubernetes.io/service-name"] != s.Name {
			continue
		}
		match := false
		for _, ep := range es.Ports {
			if ep.Name != nil && *ep.Name == p.Name {
				match = true
			}
		}
		if !match {
			continue
		}
		for _, e := range es.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				seen[e.TargetRef.Namespace+"/"+e.TargetRef.Name] = true
			} else if len(e.Addresses) > 0 {
				seen[e.Addresses[0]] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// busiestService is the Service port with the most endpoints (the seed's ingress).
func busiestService(c *cluster.Cluster) (*corev1.Service, corev1.ServicePort) {
	var best *corev1.Service
	var bp corev1.ServicePort
	bn := 0
	for _, s := range c.Objects.Services {
		for _, p := range s.Spec.Ports {
			if p.Protocol != corev1.ProtocolTCP && p.Protocol != "" {
				continue
			}
			if n := len(endpointsOf(c, s, p)); n > bn || (n == bn && n > 0 && p.NodePort != 0 && bp.NodePort == 0) {
				best, bp, bn = s, p, n
			}
		}
	}
	return best, bp
}

// clientPod picks the client: a pod without container ports (busybox, netshoot), else the
// first pod.
func clientPod(c *cluster.Cluster) *corev1.Pod {
	var first *corev1.Pod
	for _, p := range c.Objects.Pods {
		if p.Spec.HostNetwork || p.Spec.NodeName == "" || p.Status.PodIP == "" {
			continue
		}
		if first == nil {
			first = p
		}
		ports := 0
		for _, ct := range p.Spec.Containers {
			ports += len(ct.Ports)
		}
		if ports == 0 {
			return p
		}
	}
	return first
}

func subnetOf(c *cluster.Cluster, node string) netip.Prefix {
	if n := c.NodeByName(node); n != nil {
		return n.Subnet
	}
	return netip.Prefix{}
}

func podAcrossSubnet(c *cluster.Cluster, client *corev1.Pod, svc *corev1.Service) *corev1.Pod {
	want := subnetOf(c, client.Spec.NodeName)
	for _, p := range c.Objects.Pods {
		if p.Spec.HostNetwork || p.Status.PodIP == "" || subnetOf(c, p.Spec.NodeName) == want {
			continue
		}
		for k, v := range svc.Spec.Selector {
			if p.Labels[k] != v {
				goto next
			}
		}
		return p
	next:
	}
	return nil
}

func containerPort(p *corev1.Pod, sp corev1.ServicePort) int32 {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if (sp.TargetPort.StrVal != "" && cp.Name == sp.TargetPort.StrVal) || (sp.TargetPort.IntVal != 0 && cp.ContainerPort == sp.TargetPort.IntVal) {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

func nodeAcrossSubnet(c *cluster.Cluster, client *corev1.Pod) *cluster.Node {
	want := subnetOf(c, client.Spec.NodeName)
	for i := range c.Nodes {
		if c.Nodes[i].Subnet != want && c.Nodes[i].Role != "control-plane" {
			return &c.Nodes[i]
		}
	}
	return nil
}

// clientNS resolves a flow's source to a namespace key and the client's address.
func (l *Lab) clientNS(from string) (string, netip.Addr, error) {
	if from == "outside" {
		return "outside", OutsideAddr, nil
	}
	if n := l.Cluster.NodeByName(from); n != nil {
		return "node/" + n.Name, n.IP, nil
	}
	for _, p := range l.Cluster.Objects.Pods {
		if key(p) == from {
			a, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil {
				return "", netip.Addr{}, fmt.Errorf("pod %s has no IP", from)
			}
			return podNSKey(p), a, nil
		}
	}
	return "", netip.Addr{}, fmt.Errorf("no pod or node %q", from)
}

// Predict asks the model about a flow: package trace for pod and node sources, the
// EndpointSlices (equal split, masquerade for traffic from outside) otherwise.
func (l *Lab) Predict(f Flow) Prediction {
	p := Prediction{Endpoints: map[string]float64{}, Masquerade: map[string]bool{}}
	// package trace walks iptables (and IPVS through predictIPVS), not nftables, and takes
	// no source outside the cluster: those flows are predicted from the objects.
	if f.Service != "" && (f.From == "outside" || l.Cluster.Proxy.Mode == cluster.ProxyNFTables) {
		p.Source = "objects"
		s, sp := l.servicePort(f.Service)
		if s == nil {
			p.Error = "no service " + f.Service
			return p
		}
		_, clientIP, _ := l.clientNS(f.From)
		client := l.podByEndpoint(netip.AddrPortFrom(clientIP, 0).String())
		eps := endpointsOf(l.Cluster, s, sp)
		for _, e := range eps {
			p.Endpoints[e] = 1 / float64(len(eps))
			switch {
			case f.From == "outside":
				// externalTrafficPolicy Cluster: kube-proxy masquerades NodePort traffic.
				p.Masquerade[e] = s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal
			default:
				// From a pod (ClusterCIDR detector): only hairpin traffic is masqueraded.
				p.Masquerade[e] = e == client
			}
		}
		return p
	}
	p.Source = "trace"
	proto := trace.TCP
	if f.Kind == "udp" || f.Kind == "dns" {
		proto = trace.UDP
	}
	res, err := trace.TraceCluster(l.Cluster, l.Nodes, trace.ClusterRequest{From: f.From, To: f.To.String(), Proto: proto})
	if err != nil {
		p.Error = err.Error()
		return p
	}
	encap := map[string]bool{}
	for _, path := range res.Paths {
		pod := path.EndpointPod
		if pod == "" {
			pod = l.podByEndpoint(path.Endpoint)
		}
		if string(path.Verdict) != "ACCEPT" && path.Verdict != "" {
			p.Endpoints["("+string(path.Verdict)+")"] += path.Probability
			continue
		}
		p.Endpoints[pod] += path.Probability
		p.Masquerade[pod] = path.Masquerade
		// Tunnel devices on the way there and back: the encapsulating hop's device and
		// the decapsulating one's (a reply may be tunnelled when the request was not).
		for _, h := range append(append([]trace.ClusterHop(nil), path.Request...), path.Reply...) {
			if (h.Outer != nil || h.Step == "decap") && h.Dev != "" {
				encap[h.Node+":"+h.Dev] = true
			}
		}
	}
	l.predictIPVS(f, &p, encap)
	for k := range encap {
		p.Encap = append(p.Encap, k)
	}
	sort.Strings(p.Encap)
	return p
}

// predictIPVS refines a prediction when the flow's destination is an IPVS virtual service
// on the node that handles it: package trace stops at the virtual address (IPVS is not part
// of its netfilter walk), so the endpoints come from the node's IPVS model (weights of rr
// and wrr; equal shares otherwise), masquerade from the trace of the virtual address (plus
// the hairpin case, KUBE-LOOP-BACK) and the tunnels from a trace to each real server.
func (l *Lab) predictIPVS(f Flow, p *Prediction, encap map[string]bool) {
	node := l.ipvsNodeFor(f)
	n := l.Nodes[node]
	if n == nil || n.IPVS == nil {
		return
	}
	proto := ipvs.TCP
	if f.Kind == "udp" || f.Kind == "dns" {
		proto = ipvs.UDP
	}
	svc := n.IPVS.Lookup(proto, f.To.Addr(), f.To.Port(), 0)
	if svc == nil || len(svc.Dests) == 0 {
		return
	}
	masq := false
	for _, v := range p.Masquerade {
		masq = masq || v
	}
	p.Source += "+ipvs"
	p.Endpoints, p.Masquerade = map[string]float64{}, map[string]bool{}
	total := 0
	for _, d := range svc.Dests {
		total += d.Weight
	}
	_, clientIP, _ := l.clientNS(f.From)
	for _, d := range svc.Dests {
		pod := l.podByEndpoint(netip.AddrPortFrom(d.Addr, d.Port).String())
		share := 1 / float64(len(svc.Dests))
		if (svc.Scheduler == ipvs.RoundRobin || svc.Scheduler == ipvs.WeightedRoundRobin) && total > 0 {
			share = float64(d.Weight) / float64(total)
		}
		p.Endpoints[pod] += share
		p.Masquerade[pod] = masq || d.Addr == clientIP
		if f.From == "outside" {
			p.Masquerade[pod] = true
			continue
		}
		tproto := trace.TCP
		if proto == ipvs.UDP {
			tproto = trace.UDP
		}
		res, err := trace.TraceCluster(l.Cluster, l.Nodes, trace.ClusterRequest{From: f.From, To: netip.AddrPortFrom(d.Addr, d.Port).String(), Proto: tproto})
		if err != nil {
			continue
		}
		if p.EncapByPod == nil {
			p.EncapByPod = map[string][]string{}
		}
		for _, path := range res.Paths {
			for _, h := range append(append([]trace.ClusterHop(nil), path.Request...), path.Reply...) {
				if (h.Outer != nil || h.Step == "decap") && h.Dev != "" {
					encap[h.Node+":"+h.Dev] = true
					p.EncapByPod[pod] = append(p.EncapByPod[pod], h.Node+":"+h.Dev)
				}
			}
		}
	}
	switch svc.Scheduler {
	case ipvs.SourceHashing, ipvs.DestinationHashing, ipvs.MaglevHashing:
		p.NoSpread = true
	}
}

func (l *Lab) servicePort(s string) (*corev1.Service, corev1.ServicePort) {
	nsname, port, _ := strings.Cut(s, ":")
	ns, name, _ := strings.Cut(nsname, "/")
	svc := findService(l.Cluster, ns, name)
	if svc == nil {
		return nil, corev1.ServicePort{}
	}
	for _, p := range svc.Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			return svc, p
		}
	}
	return nil, corev1.ServicePort{}
}

// podByEndpoint maps "IP:port" to the pod holding IP (hostNetwork pods share node IPs: the
// first such pod by name).
func (l *Lab) podByEndpoint(ep string) string {
	ap, err := netip.ParseAddrPort(ep)
	if err != nil {
		return ep
	}
	var cands []string
	for _, p := range l.Cluster.Objects.Pods {
		if p.Status.PodIP == ap.Addr().String() {
			cands = append(cands, key(p))
		}
	}
	sort.Strings(cands)
	if len(cands) == 0 {
		return ap.Addr().String() // an endpoint that is no pod: named by its address
	}
	return cands[0]
}

// counters reads every link's packet counters in the node, router and fabric namespaces.
func (l *Lab) counters() map[string]uint64 {
	out := map[string]uint64{}
	for k, ns := range l.nsByKey {
		if strings.HasPrefix(k, "pod/") || k == "outside" {
			continue
		}
		h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
		if err != nil {
			continue
		}
		links, err := h.LinkList()
		h.Close()
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(k, "node/")
		for _, lk := range links {
			if st := lk.Attrs().Statistics; st != nil && lk.Attrs().Name != "lo" {
				out[name+":"+lk.Attrs().Name] = st.TxPackets + st.RxPackets
			}
		}
	}
	return out
}

// RunFlow sends f.Count connections and compares the kernel's answers with the model.
func (l *Lab) RunFlow(ctx context.Context, f Flow) Outcome {
	start := time.Now()
	o := Outcome{Flow: f, Answers: map[string]int{}, Sources: map[string]int{}}
	o.Predicted = l.Predict(f)
	nsKey, clientIP, err := l.clientNS(f.From)
	if err != nil {
		o.Disagreements = append(o.Disagreements, err.Error())
		return o
	}
	o.ClientIP = clientIP
	ns := l.nsByKey[nsKey]
	ipvsNode := l.ipvsNodeFor(f)
	sh, err := l.shadow(ipvsNode)
	if err != nil {
		o.Disagreements = append(o.Disagreements, err.Error())
	}
	before := l.counters()
	for i := 0; i < f.Count; i++ {
		if ctx.Err() != nil {
			break
		}
		a, err := Dial(ctx, ns, f.Kind, f.To, 2*time.Second)
		if err != nil {
			o.Failures++
			if o.FirstError == "" {
				o.FirstError = err.Error()
			}
			continue
		}
		o.Answers[a.Pod]++
		o.Sources[a.Saw.Addr().String()]++
		if sh != nil {
			l.checkIPVS(&o, sh, ipvsNode, a)
		}
	}
	if o.IPVS != nil {
		if o.IPVS.Mismatches > 0 {
			i := firstDiff(o.IPVS.Model, o.IPVS.Kernel)
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("IPVS %s on %s: %d of %d connections went to another real server than the model's scheduler; first at connection %d from %s to %s: model %s, kernel %s", o.IPVS.Scheduler, o.IPVS.Node, o.IPVS.Mismatches, o.IPVS.Checked, i+1, o.IPVS.Clients[i], f.To, o.IPVS.Model[i], o.IPVS.Kernel[i]))
		} else if o.IPVS.Checked > 0 {
			o.Agreements = append(o.Agreements, fmt.Sprintf("IPVS %s on %s: all %d connections went to the real server the model's scheduler picked", o.IPVS.Scheduler, o.IPVS.Node, o.IPVS.Checked))
		}
	}
	after := l.counters()
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			o.Crossed = append(o.Crossed, fmt.Sprintf("%s +%d", k, d))
		}
	}
	sort.Strings(o.Crossed)
	o.judge(after, before, l)
	o.Duration = time.Since(start)
	return o
}

func (o *Outcome) judge(after, before map[string]uint64, l *Lab) {
	p := o.Predicted
	if p.Error != "" {
		o.Disagreements = append(o.Disagreements, "model could not predict: "+p.Error)
	}
	if o.Failures > 0 {
		if p.Endpoints["(DROP)"]+p.Endpoints["(REJECT)"] > 0 {
			o.Agreements = append(o.Agreements, fmt.Sprintf("%d connections failed, model predicts drop/reject", o.Failures))
		} else {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("%d of %d connections failed (first: %s); model predicts they are answered", o.Failures, o.Flow.Count, o.FirstError))
		}
	}
	// Answering pods within the predicted set.
	var outside []string
	for pod := range o.Answers {
		if _, ok := p.Endpoints[pod]; !ok {
			outside = append(outside, pod)
		}
	}
	sort.Strings(outside)
	if len(outside) > 0 {
		o.Disagreements = append(o.Disagreements, fmt.Sprintf("answered by %s, not in the model's endpoints %s", strings.Join(outside, ", "), mapKeys(p.Endpoints)))
	} else if len(o.Answers) > 0 {
		o.Agreements = append(o.Agreements, "every answer came from a predicted endpoint")
	}
	// Spread: chi-square against the predicted probabilities.
	total := 0
	for _, n := range o.Answers {
		total += n
	}
	var pods []string
	for pod, pr := range p.Endpoints {
		if pr > 0 && !strings.HasPrefix(pod, "(") {
			pods = append(pods, pod)
		}
	}
	sort.Strings(pods)
	if len(pods) > 1 && total > 0 && float64(total)*minProb(p.Endpoints, pods) >= 5 && !p.NoSpread {
		chi := 0.0
		for _, pod := range pods {
			exp := float64(total) * p.Endpoints[pod]
			d := float64(o.Answers[pod]) - exp
			chi += d * d / exp
		}
		o.ChiSquare = chi
		o.PValue = chiSquareSurvival(chi, len(pods)-1)
		if o.PValue < FalseAlarm {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("spread %s over %d connections does not fit the model's %s: chi²=%.1f, df=%d, p=%.2g < %.0e", counts(o.Answers, pods), total, probs(p.Endpoints, pods), chi, len(pods)-1, o.PValue, FalseAlarm))
		} else {
			o.Agreements = append(o.Agreements, fmt.Sprintf("spread fits the model: chi²=%.1f, df=%d, p=%.3f", chi, len(pods)-1, o.PValue))
		}
	}
	// Masquerade: the source the server saw versus the client's own address. A node client
	// that is not masqueraded also shows one of its own addresses (the kernel picks the
	// tunnel's address for routes via tunl0), so there only "an address of the node" is
	// checked.
	if cn := l.Cluster.NodeByName(o.Flow.From); cn != nil {
		own := l.nodeAddrs(cn.Name)
		var foreign []string
		for src := range o.Sources {
			if !own[src] {
				foreign = append(foreign, src)
			}
		}
		sort.Strings(foreign)
		if len(foreign) > 0 {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("node client %s: servers saw %s, not an address of the node", cn.Name, strings.Join(foreign, ", ")))
		} else if len(o.Sources) > 0 {
			o.Agreements = append(o.Agreements, fmt.Sprintf("sources seen %s are the node's own addresses (masquerade or not cannot be told apart for a node client)", mapKeysInt(o.Sources)))
		}
		o.judgeEncap(after, before, l)
		return
	}
	for src, n := range o.Sources {
		masq := src != o.ClientIP.String()
		for pod := range o.Answers {
			want, ok := p.Masquerade[pod]
			if !ok {
				continue
			}
			if want != masq && len(o.Answers) == 1 {
				o.Disagreements = append(o.Disagreements, fmt.Sprintf("source seen %s (%d connections, masquerade=%t), model predicts masquerade=%t", src, n, masq, want))
			}
		}
	}
	if len(o.Answers) > 1 {
		// Per pod masquerade cannot be told apart from the aggregate sources when pods differ;
		// check that every predicted value is consistent with some observed source.
		anyMasq, anyPlain := false, false
		for src := range o.Sources {
			if src != o.ClientIP.String() {
				anyMasq = true
			} else {
				anyPlain = true
			}
		}
		wantMasq, wantPlain := false, false
		for pod := range o.Answers {
			if m, ok := p.Masquerade[pod]; ok {
				wantMasq = wantMasq || m
				wantPlain = wantPlain || !m
			}
		}
		if anyMasq != wantMasq || anyPlain != wantPlain {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("sources seen %s from client %s (masquerade seen=%t, unmasqueraded seen=%t); model predicts masquerade=%t, unmasqueraded=%t", mapKeysInt(o.Sources), o.ClientIP, anyMasq, anyPlain, wantMasq, wantPlain))
		} else {
			o.Agreements = append(o.Agreements, fmt.Sprintf("masquerade as predicted (sources seen %s)", mapKeysInt(o.Sources)))
		}
	} else if len(o.Answers) == 1 && len(o.Sources) > 0 {
		o.Agreements = append(o.Agreements, fmt.Sprintf("source seen %s", mapKeysInt(o.Sources)))
	}
	o.judgeEncap(after, before, l)
}

// judgeEncap: tunnel devices the model predicts must have moved, and on the client's node
// no others.
func (o *Outcome) judgeEncap(after, before map[string]uint64, l *Lab) {
	p := o.Predicted
	moved := map[string]bool{}
	for k, v := range after {
		if v > before[k] && isTunnel(k) {
			moved[k] = true
		}
	}
	required := p.Encap
	if p.EncapByPod != nil {
		seen := map[string]bool{}
		required = nil
		for pod := range o.Answers {
			for _, e := range p.EncapByPod[pod] {
				if !seen[e] {
					seen[e] = true
					required = append(required, e)
				}
			}
		}
		sort.Strings(required)
	}
	for _, e := range required {
		if !moved[e] {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("model predicts encapsulation on %s, its counters did not move", e))
		}
	}
	if strings.HasPrefix(p.Source, "trace") && p.Error == "" {
		var extra []string
		want := map[string]bool{}
		for _, e := range p.Encap {
			want[e] = true
		}
		for k := range moved {
			if !want[k] && strings.HasPrefix(k, nodeOfClient(o.Flow.From, l)+":") {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		if len(extra) > 0 {
			o.Disagreements = append(o.Disagreements, fmt.Sprintf("tunnel counters moved on the client's node at %s, model predicts no encapsulation there", strings.Join(extra, ", ")))
		} else if len(p.Encap) > 0 {
			o.Agreements = append(o.Agreements, "encapsulated where predicted: "+strings.Join(p.Encap, ", "))
		}
	}
}

func nodeOfClient(from string, l *Lab) string {
	if l.Cluster.NodeByName(from) != nil {
		return from
	}
	for _, p := range l.Cluster.Objects.Pods {
		if key(p) == from {
			return p.Spec.NodeName
		}
	}
	return "\x00"
}

func isTunnel(k string) bool {
	_, dev, _ := strings.Cut(k, ":")
	return dev == "tunl0" || strings.HasPrefix(dev, "vxlan") || strings.HasPrefix(dev, "flannel.") || strings.HasPrefix(dev, "tun-")
}

func minProb(m map[string]float64, keys []string) float64 {
	min := 1.0
	for _, k := range keys {
		min = math.Min(min, m[k])
	}
	return min
}

func counts(m map[string]int, keys []string) string {
	var b []string
	for _, k := range keys {
		b = append(b, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(b, " ") + "}"
}

func probs(m map[string]float64, keys []string) string {
	var b []string
	for _, k := range keys {
		b = append(b, fmt.Sprintf("%s=%.4f", k, m[k]))
	}
	return "{" + strings.Join(b, " ") + "}"
}

func mapKeys(m map[string]float64) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return "{" + strings.Join(ks, ", ") + "}"
}

func mapKeysInt(m map[string]int) string {
	var ks []string
	for k, v := range m {
		ks = append(ks, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(ks)
	return "{" + strings.Join(ks, ", ") + "}"
}

// chiSquareSurvival is P(X ≥ x) for a chi-square variable with df degrees of freedom: the
// regularized upper incomplete gamma function Q(df/2, x/2).
func chiSquareSurvival(x float64, df int) float64 {
	if x <= 0 {
		return 1
	}
	return upperGammaQ(float64(df)/2, x/2)
}

// upperGammaQ computes Q(a, x) by the series for x < a+1 and the continued fraction
// otherwise (Numerical Recipes, gammp/gammq).
func upperGammaQ(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, del, ap := 1/a, 1/a, a
		for i := 0; i < 1000; i++ {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// ipvsNodeFor is the node whose IPVS handles the flow's connections: the client's node, or
// for traffic from outside the node it is sent to.
func (l *Lab) ipvsNodeFor(f Flow) string {
	if f.From == "outside" {
		for _, n := range l.Cluster.Nodes {
			if n.IP == f.To.Addr() {
				return n.Name
			}
		}
		return ""
	}
	return nodeOfClient(f.From, l)
}

func (l *Lab) checkIPVS(o *Outcome, sh *ipvsShadow, node string, a Answer) {
	client := a.Client
	if o.Flow.From == "outside" || !client.IsValid() {
		client = netip.AddrPortFrom(o.ClientIP, a.Client.Port())
	}
	want, sched, ok, err := sh.pick(o.Flow.Kind, client, o.Flow.To)
	if !ok {
		return
	}
	if o.IPVS == nil {
		o.IPVS = &IPVSCheck{Node: node, Scheduler: string(sched)}
	}
	if !sched.Deterministic() {
		return
	}
	modelPod := l.podByEndpoint(want.String())
	if err != nil {
		modelPod = "error: " + err.Error()
	}
	o.IPVS.Checked++
	o.IPVS.Model = append(o.IPVS.Model, modelPod)
	o.IPVS.Kernel = append(o.IPVS.Kernel, a.Pod)
	o.IPVS.Clients = append(o.IPVS.Clients, client.String())
	if modelPod != a.Pod {
		o.IPVS.Mismatches++
	}
}

func firstDiff(a, b []string) int {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return 0
}

// nodeAddrs are the addresses the rendered node holds (its eth0, tunnel and pod-gateway
// addresses).
func (l *Lab) nodeAddrs(node string) map[string]bool {
	out := map[string]bool{}
	if n := l.Nodes[node]; n != nil && n.Net != nil {
		for _, a := range n.Net.Addrs {
			out[a.Prefix.Addr().String()] = true
		}
	}
	return out
}
