package nftables

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/format/nft"
)

type flow struct {
	name, src, proto, dst string
	dport                 int
	output                string
	masq                  bool
}

func readFlows(t *testing.T, file string) []flow {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []flow
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 7 {
			t.Fatalf("%s:%d: %d columns", file, n, len(c))
		}
		port, err := strconv.Atoi(c[4])
		if err != nil {
			t.Fatalf("%s:%d: %v", file, n, err)
		}
		out = append(out, flow{c[0], c[1], c[2], c[3], port, c[5], c[6] == "true"})
	}
	return out
}

// nodeLocal is the fake node's addresses (upstream's fake network interfacer): loopback,
// eth0's IPv4 and IPv6 addresses.
func nodeLocal(a netip.Addr) bool {
	for _, s := range []string{"127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2"} {
		if a == netip.MustParseAddr(s) {
			return true
		}
	}
	return false
}

// traceOutput maps the evaluator's outcomes onto upstream's flow expectation: the DNAT
// destinations in numgen order, or the verdict of a dropped/rejected packet, and whether
// the packet would be masqueraded.
func traceOutput(t *testing.T, rs *nftables.Ruleset, fl flow) (string, bool) {
	t.Helper()
	pkt := nftables.Packet{Src: netip.MustParseAddr(fl.src), Dst: netip.MustParseAddr(fl.dst), Proto: fl.proto, SPort: 40000, DPort: uint16(fl.dport)}
	outs, err := rs.Trace(pkt, nodeLocal, nftables.TraceOptions{FromLocal: nodeLocal(pkt.Src)})
	if err != nil {
		t.Fatalf("%s: %v", fl.name, err)
	}
	var dnats []string
	seen := map[string]bool{}
	masq := false
	verdict := ""
	for _, o := range outs {
		switch o.Verdict {
		case nftables.VerdictDrop, nftables.VerdictReject:
			verdict = strings.ToUpper(string(o.Verdict))
			continue
		}
		if o.Masquerade {
			masq = true
		}
		if o.DNAT != "" && !seen[o.DNAT] {
			seen[o.DNAT] = true
			dnats = append(dnats, o.DNAT)
		}
	}
	if len(dnats) == 0 {
		return verdict, masq
	}
	return strings.Join(dnats, ", "), masq
}

func renderRuleset(t *testing.T, objsFile string, opts Options) *nftables.Ruleset {
	t.Helper()
	fam := knftables.IPv4Family
	if opts.Family == IPv6 {
		fam = knftables.IPv6Family
	}
	rec := nft.NewRecorder(fam, "kube-proxy")
	p, err := New(opts, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(context.Background(), loadObjects(t, objsFile)); err != nil {
		t.Fatal(err)
	}
	rs, err := rec.Ruleset()
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.ParseRules(); err != nil {
		t.Fatalf("rendered rules do not parse: %v", err)
	}
	return rs
}

// TestPacketFlows runs upstream's nftables packet-flow expectations (nft02, nft04-nft06)
// through knet's evaluator, following the kernel's hook order instead of upstream's
// simplified tracer.
func TestPacketFlows(t *testing.T) {
	for _, tc := range []struct{ flows, objects string }{
		{"nft02", "case04"},
		{"nft04", "case05"},
		{"nft05", "case07"},
		{"nft06", "case08"},
	} {
		t.Run(tc.flows, func(t *testing.T) {
			rs := renderRuleset(t, "testdata/"+tc.objects+".objects.yaml", fakeProxierOptions(IPv4))
			flows := readFlows(t, "testdata/"+tc.flows+".flows.tsv")
			if len(flows) == 0 {
				t.Fatal("no flows")
			}
			for _, fl := range flows {
				out, masq := traceOutput(t, rs, fl)
				if out != fl.output || masq != fl.masq {
					t.Errorf("%s: got %q masq=%v, upstream expects %q masq=%v", fl.name, out, masq, fl.output, fl.masq)
				}
			}
		})
	}
}

// TestNodePortFlows is upstream's nftables TestNodePorts (nft03): four proxier variants.
func TestNodePortFlows(t *testing.T) {
	flows := readFlows(t, "testdata/nft03.flows.tsv")
	variants := []struct {
		prefix  string
		fam     Family
		objects string
		cidrs   []string
	}{
		{"[1 ", IPv4, "case06.1", nil},
		{"[2 ", IPv4, "case06.1", []string{"192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64"}},
		{"[3 ", IPv6, "case06.5", nil},
		{"[4 ", IPv6, "case06.5", []string{"192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64", "2001:db8:1::2/128"}},
	}
	for _, v := range variants {
		opts := fakeProxierOptions(v.fam)
		if v.cidrs != nil {
			opts.NodePortAddresses = nil
			for _, c := range v.cidrs {
				opts.NodePortAddresses = append(opts.NodePortAddresses, netip.MustParsePrefix(c))
			}
		}
		rs := renderRuleset(t, "testdata/"+v.objects+".objects.yaml", opts)
		n := 0
		for _, fl := range flows {
			if !strings.HasPrefix(fl.name, v.prefix) {
				continue
			}
			n++
			out, masq := traceOutput(t, rs, fl)
			if out != fl.output || masq != fl.masq {
				t.Errorf("%s: got %q masq=%v, upstream expects %q masq=%v", fl.name, out, masq, fl.output, fl.masq)
			}
		}
		if n == 0 {
			t.Errorf("no flows for variant %s", v.prefix)
		}
	}
}
