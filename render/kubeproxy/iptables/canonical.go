package iptables

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// Canonical is upstream's sortIPTablesRules (pkg/proxy/iptables/proxier_test.go): it parses
// iptables-restore text and prints it in the order kube-proxy's tests compare in, so two
// restore inputs that differ only by kube-proxy's (random) Service iteration order become
// equal: tables by name; chains KUBE-NODEPORTS, KUBE-SERVICES, other KUBE-* alphabetically,
// then the rest alphabetically; chain lines, then every chain's rules in that chain order,
// then `-X` lines; rules of KUBE-NODEPORTS (filter and nat) and KUBE-SERVICES (filter and nat)
// stably sorted by the Service name in their comment, nat KUBE-SERVICES' "must be the last
// rule" rule kept last. Comments (`#`) and blank lines are dropped; counters print [0:0].
// Errors name the line.
func Canonical(data []byte) ([]byte, error) { return canonical(data, ruleServiceName) }

// CanonicalByPort is Canonical with rules ordered by the full service port name ("ns/svc:port",
// the comment up to its first space) instead of the Service name. Upstream's order among the
// ports of one Service is Go map order; this makes multi-port Services comparable too.
func CanonicalByPort(data []byte) ([]byte, error) { return canonical(data, rulePortName) }

func canonical(data []byte, key func(string) string) ([]byte, error) {
	type chain struct {
		name    string
		rules   []string
		deleted bool
	}
	type table struct {
		name   string
		chains []*chain
		byName map[string]*chain
	}
	var tables []*table
	var cur *table
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "*"):
			if cur != nil {
				return nil, fmt.Errorf("line %d: table %q starts before COMMIT of %q", n, line[1:], cur.name)
			}
			cur = &table{name: line[1:], byName: map[string]*chain{}}
			tables = append(tables, cur)
		case line == "COMMIT":
			if cur == nil {
				return nil, fmt.Errorf("line %d: COMMIT outside a table", n)
			}
			cur = nil
		case cur == nil:
			return nil, fmt.Errorf("line %d: %q outside a table", n, line)
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) == 0 {
				return nil, fmt.Errorf("line %d: empty chain line", n)
			}
			if cur.byName[f[0]] == nil {
				c := &chain{name: f[0]}
				cur.byName[f[0]] = c
				cur.chains = append(cur.chains, c)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("line %d: rule without chain", n)
			}
			c := cur.byName[f[1]]
			if c == nil {
				return nil, fmt.Errorf("line %d: rule for undeclared chain %q", n, f[1])
			}
			c.rules = append(c.rules, line)
		case strings.HasPrefix(line, "-X "):
			name := strings.TrimSpace(line[3:])
			c := cur.byName[name]
			if c == nil {
				return nil, fmt.Errorf("line %d: -X of undeclared chain %q", n, name)
			}
			c.deleted = true
		default:
			return nil, fmt.Errorf("line %d: cannot parse %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("table %q has no COMMIT", cur.name)
	}
	sort.SliceStable(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	rank := func(name string) int {
		switch {
		case name == ChainNodePorts:
			return 0
		case name == ChainServices:
			return 1
		case strings.HasPrefix(name, "KUBE-"):
			return 2
		}
		return 3
	}
	var out bytes.Buffer
	for _, t := range tables {
		sort.SliceStable(t.chains, func(i, j int) bool {
			ri, rj := rank(t.chains[i].name), rank(t.chains[j].name)
			if ri != rj {
				return ri < rj
			}
			return t.chains[i].name < t.chains[j].name
		})
		for _, c := range t.chains {
			switch {
			case c.name == ChainNodePorts || (c.name == ChainServices && t.name != "nat"):
				sort.SliceStable(c.rules, func(i, j int) bool {
					return key(c.rules[i]) < key(c.rules[j])
				})
			case c.name == ChainServices:
				sort.SliceStable(c.rules, func(i, j int) bool {
					li := strings.Contains(c.rules[i], "must be the last rule")
					lj := strings.Contains(c.rules[j], "must be the last rule")
					if li || lj {
						return !li && lj
					}
					return key(c.rules[i]) < key(c.rules[j])
				})
			}
		}
		out.WriteString("*" + t.name + "\n")
		for _, c := range t.chains {
			out.WriteString(":" + c.name + " - [0:0]\n")
		}
		for _, c := range t.chains {
			for _, r := range c.rules {
				out.WriteString(r + "\n")
			}
		}
		for _, c := range t.chains {
			if c.deleted {
				out.WriteString("-X " + c.name + "\n")
			}
		}
		out.WriteString("COMMIT\n")
	}
	return out.Bytes(), nil
}

// ruleServiceName is upstream's getServiceName: the comment up to the first space or colon.
func ruleServiceName(rule string) string {
	c := ruleComment(rule)
	if i := strings.IndexAny(c, " :"); i >= 0 {
		c = c[:i]
	}
	return c
}

// rulePortName is the comment up to the first space.
func rulePortName(rule string) string {
	c := ruleComment(rule)
	if i := strings.IndexByte(c, ' '); i >= 0 {
		c = c[:i]
	}
	return c
}

// ruleComment returns the value of a rule's --comment (unquoted), or "".
func ruleComment(rule string) string {
	i := strings.Index(rule, "--comment ")
	if i < 0 {
		return ""
	}
	s := rule[i+len("--comment "):]
	if strings.HasPrefix(s, `"`) {
		if j := strings.IndexByte(s[1:], '"'); j >= 0 {
			return s[1 : j+1]
		}
		return s[1:]
	}
	if j := strings.IndexByte(s, ' '); j >= 0 {
		return s[:j]
	}
	return s
}

// CheckJumps is upstream's checkIPTablesRuleJumps for a full-sync restore input: in every
// table each jump target and each chain given rules must be declared (and not deleted), each
// jumped-to chain must have rules (KUBE-NODEPORTS excepted) and each declared chain must be
// jumped to (kube-proxy's fixed chains excepted).
func CheckJumps(data []byte) error {
	builtin := map[string]bool{"ACCEPT": true, "REJECT": true, "DROP": true, "MARK": true, "RETURN": true, "DNAT": true, "SNAT": true, "MASQUERADE": true}
	fixed := map[string]bool{ChainServices: true, ChainExternalServices: true, ChainNodePorts: true, ChainPostrouting: true,
		ChainForward: true, ChainMarkMasq: true, ChainProxyFirewall: true, ChainKubeletFirewall: true}
	var problems []string
	table := ""
	created, filled, jumped := map[string]bool{}, map[string]bool{}, map[string]bool{}
	flush := func() {
		var missing, empty, extra []string
		for c := range jumped {
			if !created[c] {
				missing = append(missing, c)
			} else if !filled[c] && c != ChainNodePorts {
				empty = append(empty, c)
			}
		}
		for c := range filled {
			if !created[c] && !jumped[c] {
				missing = append(missing, c)
			}
		}
		for c := range created {
			if !jumped[c] && !fixed[c] {
				extra = append(extra, c)
			}
		}
		for _, l := range []struct {
			what string
			list []string
		}{{"used but not created", missing}, {"jumped to but have no rules", empty}, {"created but not used", extra}} {
			if len(l.list) > 0 {
				sort.Strings(l.list)
				problems = append(problems, fmt.Sprintf("chains in %s %s: %s", table, l.what, strings.Join(l.list, ", ")))
			}
		}
		created, filled, jumped = map[string]bool{}, map[string]bool{}, map[string]bool{}
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case line == "COMMIT":
			flush()
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				created[f[0]] = true
			}
		case strings.HasPrefix(line, "-X "):
			delete(created, strings.TrimSpace(line[3:]))
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			filled[f[1]] = true
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "-j" && !builtin[f[i+1]] {
					jumped[f[i+1]] = true
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
