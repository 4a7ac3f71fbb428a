// Package nftables models nftables as `nft list ruleset` shows it: tables of a family,
// base chains (type, hook, priority, policy) and regular chains, rules, named sets and maps
// (with concatenated types, intervals, timeouts and verdict maps), and an evaluator with
// nftables' semantics: every base chain registered at a hook runs in priority order across
// tables, `jump` returns to the caller, `goto` does not, and an accept in one base chain
// does not stop a later base chain at the same hook from dropping.
//
// Rules are kept as their nft text and parsed into statements (see Statement) for
// evaluation; the statements cover what kube-proxy's nftables mode, Calico and common
// firewalls write. A rule the parser does not understand keeps its text and is reported.
//
//	                      hook order for one packet (priorities within a hook)
//	PREROUTING ─► [raw -300, mangle -150, dstnat -100, filter 0] ─► routing ─┬─► INPUT   ─► local process
//	                                                                          └─► FORWARD ─► POSTROUTING [srcnat 100]
//	local process ─► OUTPUT [raw, mangle, dstnat, filter] ─► routing ─► POSTROUTING [srcnat 100]
package nftables

import (
	"fmt"
	"sort"
	"strings"
)

// Family is an nftables address family, spelled as nft spells it.
type Family string

// Families.
const (
	FamilyIP     Family = "ip"
	FamilyIP6    Family = "ip6"
	FamilyInet   Family = "inet"
	FamilyARP    Family = "arp"
	FamilyBridge Family = "bridge"
	FamilyNetdev Family = "netdev"
)

// Hook is a netfilter hook a base chain attaches to.
type Hook string

// Hooks.
const (
	HookPrerouting  Hook = "prerouting"
	HookInput       Hook = "input"
	HookForward     Hook = "forward"
	HookOutput      Hook = "output"
	HookPostrouting Hook = "postrouting"
	HookIngress     Hook = "ingress"
	HookEgress      Hook = "egress"
)

// ChainType is a base chain's type.
type ChainType string

// Chain types.
const (
	TypeFilter ChainType = "filter"
	TypeNAT    ChainType = "nat"
	TypeRoute  ChainType = "route"
)

// Ruleset is every nftables table of one namespace (what `nft list ruleset` prints).
type Ruleset struct {
	Tables []*Table
}

// Table is one nftables table.
type Table struct {
	Family Family
	Name   string
	// Handle is the kernel's handle for the table (`nft -a`, `nft -j`); 0 when unknown.
	Handle  int
	Comment string
	Flags   []string
	Chains  []*Chain
	// Sets holds named sets and maps, in the order nft lists them (sets and maps are
	// listed before chains).
	Sets []*Set

	// lazily built lookup indexes, rebuilt when the slices change length
	chainIdx map[string]*Chain
	setIdx   map[string]*Set
	bases    map[Hook][]*Chain
	basesN   int
}

// Chain is a base chain (Type, Hook set) or a regular chain.
type Chain struct {
	Name     string
	Handle   int       // kernel handle; 0 when unknown
	Type     ChainType // empty for a regular chain
	Hook     Hook
	Priority int
	Device   string
	Policy   string // "accept" or "drop"; empty for a regular chain
	Comment  string
	Rules    []*Rule
}

// IsBase reports whether c is attached to a hook.
func (c *Chain) IsBase() bool { return c.Hook != "" }

// Rule is one rule: its text as nft prints it, the parsed statements, and its comment.
type Rule struct {
	// Text is the rule without its comment, in nft syntax.
	Text    string
	Comment string
	Handle  int
	// Stmts are the parsed statements; nil when the rule could not be parsed (Err says why).
	Stmts []Statement
	Err   error
}

// Set is a named set or map. A map has a non-empty DataType ("verdict" for a vmap).
type Set struct {
	Name     string
	Handle   int      // kernel handle; 0 when unknown
	KeyType  []string // concatenated types, e.g. ipv4_addr . inet_proto . inet_service
	DataType string
	Flags    []string
	Timeout  string // e.g. "10800s"
	Policy   string
	Size     int
	Comment  string
	Elements []*Element

	exact  map[string]*Element // lazily built exact-key index
	exactN int
}

// IsMap reports whether s is a map.
func (s *Set) IsMap() bool { return s.DataType != "" }

// Element is a set or map element.
type Element struct {
	Key     []string
	Value   []string
	Comment string
	Timeout string
}

// KeyString is the element key as nft writes it ("1.2.3.4 . tcp . 80").
func (e *Element) KeyString() string { return strings.Join(e.Key, " . ") }

// Table returns the table with this family and name, or nil.
func (rs *Ruleset) Table(family Family, name string) *Table {
	for _, t := range rs.Tables {
		if t.Family == family && t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain {
	if len(t.chainIdx) != len(t.Chains) {
		t.chainIdx = make(map[string]*Chain, len(t.Chains))
		for _, c := range t.Chains {
			t.chainIdx[c.Name] = c
		}
	}
	c := t.chainIdx[name]
	if c == nil || c.Name != name {
		// The index is stale (a chain was replaced in place): look it up the slow way.
		for _, x := range t.Chains {
			if x.Name == name {
				return x
			}
		}
		return nil
	}
	return c
}

// Set returns the named set or map, or nil.
func (t *Table) Set(name string) *Set {
	if len(t.setIdx) != len(t.Sets) {
		t.setIdx = make(map[string]*Set, len(t.Sets))
		for _, s := range t.Sets {
			t.setIdx[s.Name] = s
		}
	}
	s := t.setIdx[name]
	if s == nil || s.Name != name {
		for _, x := range t.Sets {
			if x.Name == name {
				return x
			}
		}
		return nil
	}
	return s
}

// baseChains returns the table's base chains at hook h.
func (t *Table) baseChains(h Hook) []*Chain {
	if t.bases == nil || t.basesN != len(t.Chains) {
		t.bases = map[Hook][]*Chain{}
		for _, c := range t.Chains {
			if c.Hook != "" {
				t.bases[c.Hook] = append(t.bases[c.Hook], c)
			}
		}
		t.basesN = len(t.Chains)
	}
	return t.bases[h]
}

// NumRules is the number of rules in all chains of the ruleset.
func (rs *Ruleset) NumRules() int {
	n := 0
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// NumElements is the number of set and map elements in the ruleset.
func (rs *Ruleset) NumElements() int {
	n := 0
	for _, t := range rs.Tables {
		for _, s := range t.Sets {
			n += len(s.Elements)
		}
	}
	return n
}

// ParseRules parses the text of every rule into statements, recording each failure on its
// rule. It returns the first failure, wrapped with the table and chain, or nil.
func (rs *Ruleset) ParseRules() error {
	var first error
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for i, r := range c.Rules {
				r.Stmts, r.Err = ParseRule(r.Text)
				if r.Err != nil && first == nil {
					first = fmt.Errorf("table %s %s chain %s rule %d %q: %w", t.Family, t.Name, c.Name, i+1, r.Text, r.Err)
				}
			}
		}
	}
	return first
}

// SortTables orders tables as nft lists them: by family then name is not what nft does
// (it lists in creation order), so callers that build a Ruleset from an unordered source
// use this for a deterministic order.
func (rs *Ruleset) SortTables() {
	sort.SliceStable(rs.Tables, func(i, j int) bool {
		if rs.Tables[i].Family != rs.Tables[j].Family {
			return rs.Tables[i].Family < rs.Tables[j].Family
		}
		return rs.Tables[i].Name < rs.Tables[j].Name
	})
}
