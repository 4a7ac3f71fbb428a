package verify

import (
	"fmt"
	"sort"
	"strings"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/nftables"
)

// kube-proxy's nftables table name (both families).
const nftTable = "kube-proxy"

func kubeProxyTables(n *dataplane.Node) []*nftables.Table {
	if n == nil || n.NFTables == nil {
		return nil
	}
	var out []*nftables.Table
	for _, t := range n.NFTables.Tables {
		if t.Name == nftTable {
			out = append(out, t)
		}
	}
	return out
}

func elementLine(e *nftables.Element) string {
	s := e.KeyString()
	if len(e.Value) > 0 {
		s += " : " + strings.Join(e.Value, " ")
	}
	return s
}

// nftServiceChain reports whether a kube-proxy nftables chain is per service or endpoint.
func nftServiceChain(name string) bool {
	for _, p := range []string{"service-", "endpoint-", "external-", "firewall-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// nftObject names the Service of a kube-proxy nftables chain
// ("service-HASH-ns/name/proto/portname", "endpoint-HASH-ns/name/proto/portname__IP/PORT") or map element (comment "ns/name:port").
func (v *verifier) nftObject(chain, comment string) string {
	if comment != "" {
		return "Service " + comment
	}
	chain, _, _ = strings.Cut(chain, "__") // endpoint chains end in __IP/PORT
	if parts := strings.SplitN(chain, "-", 3); len(parts) == 3 {
		f := strings.Split(parts[2], "/")
		if len(f) >= 4 {
			return "Service " + f[0] + "/" + f[1] + ":" + f[len(f)-1]
		}
	}
	return v.nodeObject()
}

// checkNFTables (nftables mode): kube-proxy's table exists, every element of its maps and
// sets (service-ips, service-nodeports, ...) and every per-service and per-endpoint chain is
// there, and no stale per-service chain is left.
func checkNFTables(v *verifier) {
	if v.actual.NFTables == nil {
		return // not collected: checkCollected
	}
	for _, it := range kubeProxyTables(v.intent) {
		var at *nftables.Table
		if v.actual.NFTables != nil {
			at = v.actual.NFTables.Table(it.Family, it.Name)
		}
		if at == nil {
			v.add(Finding{Severity: SeverityError, Check: CheckNFTMissingTable, Object: v.nodeObject(),
				Message:  fmt.Sprintf("table %s %s is missing: no Service works on this node", it.Family, it.Name),
				Evidence: []string{fmt.Sprintf("expected: table %s %s {", it.Family, it.Name)},
				Fix:      "restart kube-proxy (nftables mode)"})
			continue
		}
		for _, s := range it.Sets {
			as := at.Set(s.Name)
			have := map[string]bool{}
			if as != nil {
				for _, e := range as.Elements {
					have[elementLine(e)] = true
				}
			}
			for _, e := range s.Elements {
				if have[elementLine(e)] {
					continue
				}
				obj := v.nftObject("", e.Comment)
				if e.Comment == "" && len(e.Value) > 0 {
					obj = v.nftObject(e.Value[len(e.Value)-1], "")
				}
				v.add(Finding{Severity: SeverityError, Check: CheckNFTMissingElement, Object: obj,
					Message:  fmt.Sprintf("%s %s lacks element %s", kind(s), s.Name, e.KeyString()),
					Evidence: []string{"expected: " + elementLine(e)},
					Fix:      "restart kube-proxy so that it resyncs its nftables table"})
			}
		}
		for _, c := range it.Chains {
			if !nftServiceChain(c.Name) || at.Chain(c.Name) != nil {
				continue
			}
			v.add(Finding{Severity: SeverityError, Check: CheckNFTMissingChain, Object: v.nftObject(c.Name, ""),
				Message:  fmt.Sprintf("chain %s is missing from table %s %s", c.Name, it.Family, it.Name),
				Evidence: []string{"expected: chain " + c.Name + " {"},
				Fix:      "restart kube-proxy so that it resyncs its nftables table"})
		}
		var stale []string
		for _, c := range at.Chains {
			if nftServiceChain(c.Name) && it.Chain(c.Name) == nil {
				stale = append(stale, c.Name)
			}
		}
		sort.Strings(stale)
		for _, name := range stale {
			v.add(Finding{Severity: SeverityWarning, Check: CheckNFTStaleChain, Object: v.nftObject(name, ""),
				Message:  fmt.Sprintf("stale chain %s: no Service asks for it", name),
				Evidence: []string{"chain " + name + " {"},
				Fix:      fmt.Sprintf("nft delete chain %s %s %s once nothing jumps to it, or restart kube-proxy", at.Family, at.Name, name)})
		}
	}
}

func kind(s *nftables.Set) string {
	if s.IsMap() {
		return "map"
	}
	return "set"
}
