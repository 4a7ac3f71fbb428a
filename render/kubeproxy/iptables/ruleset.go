package iptables

import (
	"bytes"
	"fmt"

	"github.com/knet-dev/knet/cluster"
	nf "github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// jumpChain is one entry of upstream's iptablesJumpChains / iptablesKubeletJumpChains.
type jumpChain struct {
	table, dst, src, comment string
	extra                    []string
}

// JumpChains are kube-proxy's jump rules from the builtin chains, in upstream's list order
// (iptablesJumpChains then iptablesKubeletJumpChains). Each is ensured with `iptables -I`
// (prepend) on every full sync, so the last one of a builtin chain ends up first.
var jumpChains = []jumpChain{
	{"filter", ChainExternalServices, "INPUT", "kubernetes externally-visible service portals", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainExternalServices, "FORWARD", "kubernetes externally-visible service portals", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainNodePorts, "INPUT", "kubernetes health check service ports", nil},
	{"filter", ChainServices, "FORWARD", "kubernetes service portals", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainServices, "OUTPUT", "kubernetes service portals", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainForward, "FORWARD", "kubernetes forwarding rules", nil},
	{"filter", ChainProxyFirewall, "INPUT", "kubernetes load balancer firewall", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainProxyFirewall, "OUTPUT", "kubernetes load balancer firewall", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"filter", ChainProxyFirewall, "FORWARD", "kubernetes load balancer firewall", []string{"-m", "conntrack", "--ctstate", "NEW"}},
	{"nat", ChainServices, "OUTPUT", "kubernetes service portals", nil},
	{"nat", ChainServices, "PREROUTING", "kubernetes service portals", nil},
	{"nat", ChainPostrouting, "POSTROUTING", "kubernetes postrouting rules", nil},
	{"filter", ChainKubeletFirewall, "INPUT", "", nil},
	{"filter", ChainKubeletFirewall, "OUTPUT", "", nil},
}

// NodeSetup returns, as iptables-restore --noflush input, what exists on the node before
// kube-proxy's first restore: kubelet's chains (KUBE-IPTABLES-HINT in mangle,
// KUBE-KUBELET-CANARY in mangle/nat/filter, and for IPv4 KUBE-FIREWALL with its "block
// incoming localnet connections" rule and the INPUT/OUTPUT jumps it prepends —
// pkg/kubelet/kubelet_network_linux.go), kube-proxy's canary KUBE-PROXY-CANARY in
// mangle/nat/filter (utiliptables Monitor), and the jump rules of a full sync (EnsureChain +
// EnsureRule(Prepend), skipped when the identical rule exists).
func NodeSetup(fam kubeproxy.Family) []byte {
	var b bytes.Buffer
	b.WriteString("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n:" + ChainProxyCanary + " - [0:0]\nCOMMIT\n")
	for _, table := range []string{"filter", "nat"} {
		b.WriteString("*" + table + "\n")
		b.WriteString(":" + ChainKubeletCanary + " - [0:0]\n")
		b.WriteString(":" + ChainProxyCanary + " - [0:0]\n")
		have := map[string]bool{}
		if table == "filter" && fam == kubeproxy.IPv4 {
			b.WriteString(":" + ChainKubeletFirewall + " - [0:0]\n")
			b.WriteString("-I OUTPUT -j " + ChainKubeletFirewall + "\n")
			b.WriteString("-I INPUT -j " + ChainKubeletFirewall + "\n")
			b.WriteString(`-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP` + "\n")
			have["OUTPUT -j KUBE-FIREWALL"] = true
			have["INPUT -j KUBE-FIREWALL"] = true
		}
		declared := map[string]bool{ChainKubeletFirewall: fam == kubeproxy.IPv4 && table == "filter"}
		for _, j := range jumpChains {
			if j.table != table {
				continue
			}
			if !declared[j.dst] {
				b.WriteString(":" + j.dst + " - [0:0]\n")
				declared[j.dst] = true
			}
			var rule bytes.Buffer
			rule.WriteString(j.src)
			for _, w := range j.extra {
				rule.WriteString(" " + w)
			}
			if j.comment != "" {
				rule.WriteString(` -m comment --comment "` + j.comment + `"`)
			}
			rule.WriteString(" -j " + j.dst)
			if have[rule.String()] {
				continue
			}
			have[rule.String()] = true
			b.WriteString("-I " + rule.String() + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}

// RenderRuleset returns the node's whole iptables state (or ip6tables state for IPv6
// options) after kube-proxy's first sync: NodeSetup, then the restore input of Render
// applied with --noflush, as the kernel holds it.
func RenderRuleset(objs cluster.Objects, opts Options) (*nf.Ruleset, error) {
	p := NewProxier(opts)
	restore, err := p.Sync(objs)
	if err != nil {
		return nil, err
	}
	return p.Ruleset(restore)
}

// Ruleset applies NodeSetup and then restore (a Sync result of p) to an empty ruleset of
// p's family.
func (p *Proxier) Ruleset(restore []byte) (*nf.Ruleset, error) {
	fam := nf.IPv4
	if p.opts.Family == kubeproxy.IPv6 {
		fam = nf.IPv6
	}
	rs := &nf.Ruleset{Family: fam}
	if err := iptablessave.Restore(rs, bytes.NewReader(NodeSetup(p.opts.Family)), "node-setup", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		return nil, fmt.Errorf("applying node setup: %w", err)
	}
	if err := iptablessave.Restore(rs, bytes.NewReader(restore), "kube-proxy-restore", iptablessave.RestoreOptions{NoFlush: true, Counters: true}); err != nil {
		return nil, fmt.Errorf("applying kube-proxy restore input: %w", err)
	}
	return rs, nil
}
