package verify

import (
	"fmt"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// maxEvidence bounds the evidence lines of one finding.
const maxEvidence = 8

func natTable(n *dataplane.Node) *netfilter.Table {
	if n == nil || n.IPTables == nil {
		return nil
	}
	return n.IPTables.Table(netfilter.TableName("nat"))
}

// chainLines are a chain's rules as iptables-save prints them.
func chainLines(c *netfilter.Chain, prefix string) []string {
	out := []string{}
	for _, r := range c.Rules {
		if len(out) == maxEvidence {
			out = append(out, fmt.Sprintf("%s... (%d rules in all)", prefix, len(c.Rules)))
			break
		}
		out = append(out, prefix+iptablessave.FormatRule(c.Name, r, netfilter.IPv4))
	}
	if len(out) == 0 {
		out = append(out, prefix+":"+c.Name+" - [0:0]")
	}
	return out
}

func ruleSet(c *netfilter.Chain) map[string]int {
	m := make(map[string]int, len(c.Rules))
	for _, r := range c.Rules {
		m[iptablessave.FormatRule(c.Name, r, netfilter.IPv4)]++
	}
	return m
}

// checkIPTablesServices (iptables mode): every per-service and per-endpoint chain the intent
// has exists in the snapshot with all its rules, and every jump from KUBE-SERVICES /
// KUBE-NODEPORTS to a service chain is there.
func checkIPTablesServices(v *verifier) {
	it, at := natTable(v.intent), natTable(v.actual)
	if it == nil || v.actual.IPTables == nil {
		return // not collected: checkCollected
	}
	for _, ic := range it.Chains {
		switch {
		case iptables.IsServiceChain(ic.Name):
			var ac *netfilter.Chain
			if at != nil {
				ac = at.Chain(ic.Name)
			}
			if ac == nil {
				check, what := CheckIPTMissingServiceChain, "service chain"
				if strings.HasPrefix(ic.Name, iptables.PrefixSEP) {
					check, what = CheckIPTMissingEndpointChain, "endpoint chain"
				}
				v.add(Finding{Severity: SeverityError, Check: check, Object: v.chainObject(it, ic.Name),
					Message:  fmt.Sprintf("%s %s is missing from the nat table", what, ic.Name),
					Evidence: chainLines(ic, "expected: "),
					Fix:      "kube-proxy has not synced (or the chain was deleted): check kube-proxy's logs and restart it; it rewrites the whole nat table"})
				continue
			}
			if !v.sameRules(ic, ac) {
				v.missingRules(ic, ac, v.chainObject(it, ic.Name))
			}
		case ic.Name == "KUBE-SERVICES" || ic.Name == "KUBE-NODEPORTS":
			var have map[string]int
			if at != nil {
				if ac := at.Chain(ic.Name); ac != nil {
					if v.sameRules(ic, ac) {
						continue
					}
					have = ruleSet(ac)
				}
			}
			for _, r := range ic.Rules {
				j, ok := r.Target.(*netfilter.Jump)
				if !ok || !iptables.IsServiceChain(j.Chain) {
					continue
				}
				line := iptablessave.FormatRule(ic.Name, r, netfilter.IPv4)
				if have[line] > 0 {
					have[line]--
					continue
				}
				v.add(Finding{Severity: SeverityError, Check: CheckIPTMissingRule, Object: v.chainObject(it, j.Chain),
					Message:  fmt.Sprintf("%s has no rule sending the Service's traffic to %s", ic.Name, j.Chain),
					Evidence: []string{"expected: " + line},
					Fix:      "restart kube-proxy so that it resyncs the nat table"})
			}
		}
	}
}

// sameRules reports whether two chains have equal rules in the same order, comparing their
// iptables-save forms in two reused buffers (the common, clean case allocates nothing).
func (v *verifier) sameRules(a, b *netfilter.Chain) bool {
	if len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		v.bufA = iptablessave.AppendRule(v.bufA[:0], a.Rules[i], netfilter.IPv4)
		v.bufB = iptablessave.AppendRule(v.bufB[:0], b.Rules[i], netfilter.IPv4)
		if string(v.bufA) != string(v.bufB) {
			return false
		}
	}
	return true
}

// missingRules reports the rules of intent chain ic that actual chain ac lacks.
func (v *verifier) missingRules(ic, ac *netfilter.Chain, obj string) {
	if v.sameRules(ic, ac) {
		return
	}
	have := ruleSet(ac)
	// A DNAT to the wrong place is checkIPTablesDNAT's finding, not a missing rule.
	actualDNAT := len(dnatTargets(ac)) > 0
	var missing []string
	for _, r := range ic.Rules {
		line := iptablessave.FormatRule(ic.Name, r, netfilter.IPv4)
		if have[line] > 0 {
			have[line]--
			continue
		}
		if _, ok := r.Target.(*netfilter.DNAT); ok && actualDNAT {
			continue
		}
		missing = append(missing, "expected: "+line)
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("chain %s lacks %d of its %d rules", ic.Name, len(missing), len(ic.Rules))
	if len(ac.Rules) == 0 {
		msg = fmt.Sprintf("chain %s is empty (flushed); it should have %d rules", ic.Name, len(ic.Rules))
	}
	if len(missing) > maxEvidence {
		missing = append(missing[:maxEvidence], fmt.Sprintf("expected: ... (%d rules missing)", len(missing)))
	}
	v.add(Finding{Severity: SeverityError, Check: CheckIPTMissingRule, Object: obj, Message: msg,
		Evidence: append(chainLines(ac, ""), missing...),
		Fix:      "restart kube-proxy so that it resyncs the nat table"})
}

// references counts the jumps to each chain of t.
func references(t *netfilter.Table) map[string]int {
	m := map[string]int{}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if j, ok := r.Target.(*netfilter.Jump); ok {
				m[j.Chain]++
			}
		}
	}
	return m
}

// checkIPTablesStale (iptables mode): per-service and per-endpoint chains in the snapshot
// that the intent does not have. A stale chain still jumped to is an error (traffic reaches
// an endpoint that is gone); an unreferenced one is a warning.
func checkIPTablesStale(v *verifier) {
	if v.c != nil && v.c.Proxy.Mode != cluster.ProxyIPTables {
		return // another mode's chains are leftovers (checkLeftovers)
	}
	it, at := natTable(v.intent), natTable(v.actual)
	if at == nil {
		return
	}
	var refs map[string]int
	for _, ac := range at.Chains {
		if !iptables.IsServiceChain(ac.Name) || (it != nil && it.Chain(ac.Name) != nil) {
			continue
		}
		if refs == nil {
			refs = references(at)
		}
		sev, how := SeverityWarning, "no rule jumps to it"
		if refs[ac.Name] > 0 {
			sev, how = SeverityError, fmt.Sprintf("%d rule(s) still jump to it", refs[ac.Name])
		}
		what := "service chain"
		if strings.HasPrefix(ac.Name, iptables.PrefixSEP) {
			what = "endpoint chain"
		}
		v.add(Finding{Severity: sev, Check: CheckIPTStaleChain, Object: v.chainObject(at, ac.Name),
			Message:  fmt.Sprintf("stale %s %s: the Service objects do not ask for it; %s", what, ac.Name, how),
			Evidence: chainLines(ac, ""),
			Fix:      fmt.Sprintf("restart kube-proxy (it deletes stale chains on a full sync), or: iptables -t nat -F %s && iptables -t nat -X %s once nothing jumps to it", ac.Name, ac.Name)})
	}
}

// dnatTargets are the DNAT destinations of a chain.
func dnatTargets(c *netfilter.Chain) map[string]bool {
	m := map[string]bool{}
	for _, r := range c.Rules {
		if d, ok := r.Target.(*netfilter.DNAT); ok {
			m[natString(d.To)] = true
		}
	}
	return m
}

func natString(r netfilter.NATRange) string {
	return fmt.Sprintf("%s:%d", r.MinAddr, r.MinPort)
}

// checkIPTablesDNAT (iptables mode): in the endpoint chains both sides have, every DNAT
// goes to the endpoint the intent names.
func checkIPTablesDNAT(v *verifier) {
	it, at := natTable(v.intent), natTable(v.actual)
	if it == nil || at == nil {
		return
	}
	for _, ic := range it.Chains {
		if !strings.HasPrefix(ic.Name, iptables.PrefixSEP) {
			continue
		}
		ac := at.Chain(ic.Name)
		if ac == nil {
			continue
		}
		want := dnatTargets(ic)
		for _, r := range ac.Rules {
			d, ok := r.Target.(*netfilter.DNAT)
			if !ok || want[natString(d.To)] {
				continue
			}
			v.add(Finding{Severity: SeverityError, Check: CheckIPTDNATNotEndpoint, Object: v.chainObject(it, ic.Name),
				Message:  fmt.Sprintf("%s DNATs to %s, which is not this chain's endpoint", ic.Name, natString(d.To)),
				Evidence: []string{iptablessave.FormatRule(ac.Name, r, netfilter.IPv4)},
				Fix:      "restart kube-proxy so that it rewrites the endpoint chains from the EndpointSlices"})
		}
	}
}
