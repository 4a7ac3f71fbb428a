// Package canon puts an iptables-restore input written by kube-proxy's iptables proxier
// (any version since 1.28) into a canonical order, so that two inputs that differ only in
// kube-proxy's Go map iteration order compare equal. It has no Kubernetes dependencies,
// so that it can be fuzzed cheaply.
package canon

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// lastRuleComment marks the KUBE-SERVICES rule that must stay last in its chain.
const lastRuleComment = "NOTE: this must be the last rule in this chain"

// serviceOrderedChains are the chains whose rules kube-proxy writes while iterating its
// service map, so that their order between services is not deterministic.
var serviceOrderedChains = map[string]bool{
	"KUBE-SERVICES":          true,
	"KUBE-NODEPORTS":         true,
	"KUBE-EXTERNAL-SERVICES": true,
	"KUBE-PROXY-FIREWALL":    true,
}

type canonTable struct {
	name   string
	chains map[string]string // chain name -> its ":CHAIN POLICY [p:b]" line
	rules  map[string][]string
	other  []string // "-X CHAIN" and anything else, sorted
}

// Canonical rewrites an iptables-restore input into a deterministic order so that two
// inputs that differ only in kube-proxy's map iteration order compare equal: tables by
// name; chains KUBE-NODEPORTS, KUBE-SERVICES, then other KUBE-* chains, then the rest,
// each group by name; each chain's declaration followed by its rules; rules in chains
// filled service by service (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES,
// KUBE-PROXY-FIREWALL) stably sorted by the service port name in their comment, with the
// "must be the last rule" rules last; other chains keep their rule order; "-X" lines
// after all chains, sorted. Blank lines and comments are dropped.
//
// This follows the description of upstream's sortIPTablesRules test helper (not its
// code); it is wider in that it also sorts the filter table's service-ordered chains.
func Canonical(restore []byte) (string, error) {
	var tables []*canonTable
	var cur *canonTable
	sc := bufio.NewScanner(bytes.NewReader(restore))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " ")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if cur != nil {
				return "", fmt.Errorf("line %d: table %s starts before COMMIT of %s", n, line, cur.name)
			}
			cur = &canonTable{name: line[1:], chains: map[string]string{}, rules: map[string][]string{}}
			tables = append(tables, cur)
		case cur == nil:
			return "", fmt.Errorf("line %d: %q outside a table", n, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.chains[name] = line
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			cur.rules[chain] = append(cur.rules[chain], line)
		default:
			cur.other = append(cur.other, line)
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading restore input: %w", err)
	}
	if cur != nil {
		return "", fmt.Errorf("table %s has no COMMIT", cur.name)
	}
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].name < tables[j].name })

	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "*%s\n", t.name)
		names := make([]string, 0, len(t.chains)+len(t.rules))
		seen := map[string]bool{}
		for c := range t.chains {
			names, seen[c] = append(names, c), true
		}
		for c := range t.rules {
			if !seen[c] {
				names = append(names, c)
			}
		}
		sort.Slice(names, func(i, j int) bool { return chainLess(names[i], names[j]) })
		for _, c := range names {
			if decl, ok := t.chains[c]; ok {
				b.WriteString(decl + "\n")
			}
		}
		for _, c := range names {
			rules := t.rules[c]
			if serviceOrderedChains[c] {
				rules = sortByService(rules)
			}
			for _, r := range rules {
				b.WriteString(r + "\n")
			}
		}
		other := append([]string(nil), t.other...)
		sort.Strings(other)
		for _, o := range other {
			b.WriteString(o + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String(), nil
}

func chainRank(c string) int {
	switch {
	case c == "KUBE-NODEPORTS":
		return 0
	case c == "KUBE-SERVICES":
		return 1
	case strings.HasPrefix(c, "KUBE-"):
		return 2
	default:
		return 3
	}
}

func chainLess(a, b string) bool {
	if ra, rb := chainRank(a), chainRank(b); ra != rb {
		return ra < rb
	}
	return a < b
}

func sortByService(rules []string) []string {
	out := append([]string(nil), rules...)
	sort.SliceStable(out, func(i, j int) bool {
		li, lj := strings.Contains(out[i], lastRuleComment), strings.Contains(out[j], lastRuleComment)
		if li != lj {
			return lj
		}
		if li {
			return out[i] < out[j] // one per node IP, written in map order
		}
		return ruleService(out[i]) < ruleService(out[j])
	})
	return out
}

// ruleService returns the first word of a rule's comment, which kube-proxy makes the
// service port name ("ns/svc:port"), without quotes.
func ruleService(rule string) string {
	_, after, ok := strings.Cut(rule, "--comment ")
	if !ok {
		return ""
	}
	after = strings.TrimPrefix(after, `"`)
	w, _, _ := strings.Cut(after, " ")
	return strings.TrimSuffix(w, `"`)
}
