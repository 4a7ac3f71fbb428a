package trace

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
	kpiptables "github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// benchServices x benchEndpoints is the scale of the benchmarks: 10,000 ClusterIP+NodePort
// Services with 10 endpoints each.
const (
	benchServices  = 10000
	benchEndpoints = 10
)

func addrN(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// kubeProxyRestore writes kube-proxy-shaped iptables-restore input (v1.35 iptables mode,
// large-cluster mode: no comments on SVC->SEP and SEP rules since there are more than 1000
// endpoints) for nSvc Services with nEp endpoints each, with the real chain-name hashes.
func kubeProxyRestore(nSvc, nEp int) string {
	var sb strings.Builder
	sb.WriteString("*filter\n:KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FIREWALL - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n")
	sb.WriteString("-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n")
	sb.WriteString("-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP\n")
	sb.WriteString("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n")
	sb.WriteString("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	sb.WriteString("COMMIT\n*nat\n:KUBE-NODEPORTS - [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n")
	type svc struct {
		spn, svcChain, extChain string
		cip                     netip.Addr
		nodePort                int
		eps                     []netip.Addr
		seps                    []string
	}
	svcs := make([]svc, nSvc)
	cipBase := netip.MustParseAddr("172.30.0.0")
	epBase := netip.MustParseAddr("10.128.0.0")
	for i := range svcs {
		s := &svcs[i]
		s.spn = fmt.Sprintf("ns%d/svc%d:http", i/100, i)
		h := kpiptables.PortProtoHash(s.spn, "tcp")
		s.svcChain, s.extChain = "KUBE-SVC-"+h, "KUBE-EXT-"+h
		s.cip = addrN(cipBase, i+1)
		s.nodePort = 30000 + i%2768
		for j := 0; j < nEp; j++ {
			ep := addrN(epBase, i*nEp+j+1)
			s.eps = append(s.eps, ep)
			s.seps = append(s.seps, kpiptables.EndpointChainName(s.spn, "tcp", ep.String()+":8080"))
		}
		fmt.Fprintf(&sb, ":%s - [0:0]\n:%s - [0:0]\n", s.extChain, s.svcChain)
		for _, sep := range s.seps {
			fmt.Fprintf(&sb, ":%s - [0:0]\n", sep)
		}
	}
	sb.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	sb.WriteString("-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n")
	sb.WriteString("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE\n")
	sb.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	for i := range svcs {
		s := &svcs[i]
		fmt.Fprintf(&sb, "-A KUBE-SERVICES -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s --dport 80 -j %s\n", s.spn, s.cip, s.svcChain)
		fmt.Fprintf(&sb, "-A KUBE-NODEPORTS -m comment --comment %s -m tcp -p tcp --dport %d -j %s\n", s.spn, s.nodePort, s.extChain)
		fmt.Fprintf(&sb, "-A %s -m comment --comment \"masquerade traffic for %s external destinations\" -j KUBE-MARK-MASQ\n", s.extChain, s.spn)
		fmt.Fprintf(&sb, "-A %s -j %s\n", s.extChain, s.svcChain)
		fmt.Fprintf(&sb, "-A %s -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n", s.svcChain, s.spn, s.cip)
		for j, sep := range s.seps {
			if j < len(s.seps)-1 {
				fmt.Fprintf(&sb, "-A %s -m statistic --mode random --probability %s -j %s\n", s.svcChain, kpiptables.ComputeProbability(len(s.seps)-j), sep)
			} else {
				fmt.Fprintf(&sb, "-A %s -j %s\n", s.svcChain, sep)
			}
		}
		for j, sep := range s.seps {
			fmt.Fprintf(&sb, "-A %s -s %s -j KUBE-MARK-MASQ\n", sep, s.eps[j])
			fmt.Fprintf(&sb, "-A %s -m tcp -p tcp -j DNAT --to-destination %s:8080\n", sep, s.eps[j])
		}
	}
	sb.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n")
	sb.WriteString("COMMIT\n")
	return sb.String()
}

func benchNode(b *testing.B) (*Node, []Request) { return benchNodeN(b, benchServices) }

func benchNodeN(b *testing.B, nSvc int) (*Node, []Request) {
	b.Helper()
	rs := &netfilter.Ruleset{Family: netfilter.IPv4}
	base, err := os.ReadFile(filepath.Join("testdata", "kube-proxy-cases", "base-jumps.derived.iptables-restore"))
	if err != nil {
		b.Fatal(err)
	}
	if err := iptablessave.Restore(rs, strings.NewReader(string(base)), "base", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		b.Fatal(err)
	}
	if err := iptablessave.Restore(rs, strings.NewReader(kubeProxyRestore(nSvc, benchEndpoints)), "generated", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		b.Fatal(err)
	}
	rules := 0
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			rules += len(c.Rules)
		}
	}
	b.ReportMetric(float64(rules), "rules")
	n, err := NewNode("bench", rs, nil, netfilter.NewLocalAddrs(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.0.2")))
	if err != nil {
		b.Fatal(err)
	}
	// A deterministic spread of flows: pods to ClusterIPs all over KUBE-SERVICES, and
	// every 10th an external client to a NodePort.
	var reqs []Request
	cipBase := netip.MustParseAddr("172.30.0.0")
	for k := 0; k < 4096; k++ {
		i := (k * 7919) % nSvc
		r := Request{Src: addrN(netip.MustParseAddr("10.1.0.0"), k%250+1), Dst: addrN(cipBase, i+1), Proto: TCP, DPort: 80}
		if k%10 == 0 {
			r = Request{Src: netip.MustParseAddr("203.0.113.2"), Dst: netip.MustParseAddr("192.168.0.2"), Proto: TCP, DPort: uint16(30000 + i%2768)}
		}
		reqs = append(reqs, r)
	}
	return n, reqs
}

func benchTrace(b *testing.B, indexed, paths bool) { benchTraceN(b, benchServices, indexed, paths) }

func benchTraceN(b *testing.B, nSvc int, indexed, paths bool) {
	n, reqs := benchNodeN(b, nSvc)
	if indexed {
		n = n.Indexed()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	branches := 0
	for i := 0; i < b.N; i++ {
		var res *Result
		var err error
		if paths {
			res, err = Trace(n, reqs[i%len(reqs)])
		} else {
			res, err = TraceBrief(n, reqs[i%len(reqs)])
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(res.DNAT) != benchEndpoints {
			b.Fatalf("%+v: %d DNAT destinations, want %d", reqs[i%len(reqs)], len(res.DNAT), benchEndpoints)
		}
		branches += len(res.Branches)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	if cpu1, ok := processCPU(); ok && cpuOK {
		cpu := (cpu1 - cpu0).Seconds()
		b.ReportMetric(cpu*1e9/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/cpu, "flows/cpu-s")
	}
}

// BenchmarkTraceLinear traces flows (TraceBrief: verdicts, every DNAT destination with its
// probability, masquerade) through 10,000 Services x 10 endpoints with the in-order
// evaluator (the kernel's own algorithm, and the peer of the indexed one).
func BenchmarkTraceLinear(b *testing.B) { benchTrace(b, false, false) }

// BenchmarkTraceIndexed is BenchmarkTraceLinear with dispatch indexes.
func BenchmarkTraceIndexed(b *testing.B) { benchTrace(b, true, false) }

// BenchmarkTraceFullLinear and BenchmarkTraceFullIndexed also build every branch's path
// (Trace, what `knet trace` prints).
func BenchmarkTraceFullLinear(b *testing.B)  { benchTrace(b, false, true) }
func BenchmarkTraceFullIndexed(b *testing.B) { benchTrace(b, true, true) }

// BenchmarkTraceOneService is the per-flow cost of the 10-endpoint fan-out alone (one
// Service, so no dispatch to speak of): the floor the indexed evaluator approaches.
func BenchmarkTraceOneService(b *testing.B) { benchTraceN(b, 1, true, false) }

// benchHook measures the evaluator alone: one nat PREROUTING traversal (KUBE-SERVICES
// dispatch, the SVC chain's 10-way statistic fan-out, SEP DNAT) per flow, no routing, no
// other hooks, no result building.
func benchHook(b *testing.B, indexed bool) {
	n, reqs := benchNode(b)
	ev := n.IPv4
	if indexed {
		ev = ev.Indexed()
	}
	env := netfilter.NewEnv(n.Local)
	env.NoSteps = true
	pkts := make([]netfilter.Packet, len(reqs))
	for i, r := range reqs {
		pkts[i] = netfilter.Packet{Src: r.Src, Dst: r.Dst, Proto: string(r.Proto), SPort: DefaultSPort, DPort: r.DPort}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	for i := 0; i < b.N; i++ {
		out := ev.Eval(netfilter.Prerouting, env, pkts[i%len(pkts)])
		if len(out) != benchEndpoints {
			b.Fatalf("%d branches, want %d", len(out), benchEndpoints)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	if cpu1, ok := processCPU(); ok && cpuOK {
		cpu := (cpu1 - cpu0).Seconds()
		b.ReportMetric(cpu*1e9/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/cpu, "flows/cpu-s")
	}
}

// BenchmarkHookLinear and BenchmarkHookIndexed: nat PREROUTING only, evaluator level.
func BenchmarkHookLinear(b *testing.B)  { benchHook(b, false) }
func BenchmarkHookIndexed(b *testing.B) { benchHook(b, true) }
