package iptablessave

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"runtime"
	"strings"
	"testing"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// kubeProxyDump generates the iptables-restore input kube-proxy (v1.35, iptables mode)
// writes on a full sync for services services with endpoints endpoints each: per service a
// KUBE-SERVICES rule, a NodePort rule, an EXT chain, a SVC chain with the masquerade rule and
// one probability rule per endpoint, and per endpoint a SEP chain with its masquerade and
// DNAT rules. Chain names are kube-proxy's sha256/base32 hashes.
func kubeProxyDump(services, endpoints int) []byte {
	hash := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return base32.StdEncoding.EncodeToString(h[:])[:16]
	}
	var chains, rules strings.Builder
	chains.WriteString("*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-EXTERNAL-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-PROXY-FIREWALL - [0:0]\n")
	chains.WriteString("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n")
	chains.WriteString("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n")
	chains.WriteString("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	chains.WriteString("COMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	rules.WriteString("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n")
	rules.WriteString("-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n")
	rules.WriteString("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n")
	rules.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	for s := 0; s < services; s++ {
		ns, name := fmt.Sprintf("ns%d", s%100), fmt.Sprintf("svc%d", s)
		spn := ns + "/" + name + ":http"
		h := hash(spn + "tcp")
		svc, ext := "KUBE-SVC-"+h, "KUBE-EXT-"+h
		cip := fmt.Sprintf("172.30.%d.%d", s/250, s%250+1)
		np := 30000 + s%2767
		fmt.Fprintf(&chains, ":%s - [0:0]\n:%s - [0:0]\n", ext, svc)
		fmt.Fprintf(&rules, "-A KUBE-SERVICES -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s --dport 80 -j %s\n", spn, cip, svc)
		fmt.Fprintf(&rules, "-A KUBE-NODEPORTS -m comment --comment %s -m tcp -p tcp --dport %d -j %s\n", spn, np, ext)
		fmt.Fprintf(&rules, "-A %s -m comment --comment \"masquerade traffic for %s external destinations\" -j KUBE-MARK-MASQ\n", ext, spn)
		fmt.Fprintf(&rules, "-A %s -j %s\n", ext, svc)
		fmt.Fprintf(&rules, "-A %s -m comment --comment \"%s cluster IP\" -m tcp -p tcp -d %s --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ\n", svc, spn, cip)
		seps := make([]string, endpoints)
		for e := 0; e < endpoints; e++ {
			ep := fmt.Sprintf("10.%d.%d.%d:8080", 64+s/65536, (s/256)%256, e+s%200+1)
			seps[e] = "KUBE-SEP-" + hash(spn+"tcp"+ep)
			fmt.Fprintf(&chains, ":%s - [0:0]\n", seps[e])
			if e < endpoints-1 {
				fmt.Fprintf(&rules, "-A %s -m comment --comment \"%s -> %s\" -m statistic --mode random --probability %0.10f -j %s\n", svc, spn, ep, 1.0/float64(endpoints-e), seps[e])
			} else {
				fmt.Fprintf(&rules, "-A %s -m comment --comment \"%s -> %s\" -j %s\n", svc, spn, ep, seps[e])
			}
		}
		for e := 0; e < endpoints; e++ {
			ep := fmt.Sprintf("10.%d.%d.%d:8080", 64+s/65536, (s/256)%256, e+s%200+1)
			ip, _, _ := strings.Cut(ep, ":")
			fmt.Fprintf(&rules, "-A %s -m comment --comment %s -s %s -j KUBE-MARK-MASQ\n", seps[e], spn, ip)
			fmt.Fprintf(&rules, "-A %s -m comment --comment %s -m tcp -p tcp -j DNAT --to-destination %s\n", seps[e], spn, ep)
		}
	}
	rules.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n")
	return []byte(chains.String() + rules.String())
}

func TestKubeProxyDumpIsValid(t *testing.T) {
	in := kubeProxyDump(20, 3)
	rs := &nf.Ruleset{Family: nf.IPv4}
	if err := Restore(rs, bytes.NewReader(in), "gen", RestoreOptions{NoFlush: true}); err != nil {
		t.Fatal(err)
	}
	// 3 fixed filter + 4 fixed nat + 1 tail + per service 5 + 3*3.
	if got, want := countRules(rs), 3+4+1+20*(5+3*3); got != want {
		t.Errorf("rules = %d, want %d", got, want)
	}
}

func countRules(rs *nf.Ruleset) int {
	n := 0
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// benchDump is the 10,000 services x 10 endpoints dump, as restore input and as the
// iptables-save text Normalize prints for it.
func benchDump(b *testing.B) (restore, save []byte) {
	b.Helper()
	restore = kubeProxyDump(10000, 10)
	var err error
	save, err = Normalize(restore, NormalizeOptions{Write: WriteOptions{NoHeader: true}})
	if err != nil {
		b.Fatal(err)
	}
	return restore, save
}

// reportHeap reports the live heap held by v after a GC, in MiB.
func reportHeap(b *testing.B, before runtime.MemStats, keep any) {
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "live-MiB")
	runtime.KeepAlive(keep)
}

// BenchmarkParse parses the iptables-save text of 10k services x 10 endpoints (~360k rules).
func BenchmarkParse(b *testing.B) {
	_, save := benchDump(b)
	b.SetBytes(int64(len(save)))
	b.ReportAllocs()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var rs *nf.Ruleset
	for b.Loop() {
		var err error
		rs, _, err = Parse(bytes.NewReader(save), "bench")
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(countRules(rs)), "rules")
	reportHeap(b, before, rs)
}

// BenchmarkRestore applies kube-proxy's restore input to an empty ruleset (iptables-restore
// --noflush semantics, including the jump check at COMMIT), for 1,000 and 10,000 services
// x 10 endpoints; kernel.BenchmarkRealRestoreTest runs the real tool on the same inputs.
func BenchmarkRestore(b *testing.B) {
	for _, services := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			restore := kubeProxyDump(services, 10)
			b.SetBytes(int64(len(restore)))
			b.ReportAllocs()
			for b.Loop() {
				rs := &nf.Ruleset{Family: nf.IPv4}
				if err := Restore(rs, bytes.NewReader(restore), "bench", RestoreOptions{NoFlush: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWrite prints the 10k x 10 ruleset as iptables-save does.
func BenchmarkWrite(b *testing.B) {
	_, save := benchDump(b)
	rs, _, err := Parse(bytes.NewReader(save), "bench")
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	out.Grow(len(save) + 1<<20)
	b.SetBytes(int64(len(save)))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		if err := Write(&out, rs, WriteOptions{NoHeader: true}); err != nil {
			b.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), save) {
		b.Fatal("Write(Parse(save)) != save")
	}
}
