// Package netfilter models the iptables side of Linux netfilter as `iptables-save` shows it
// for iptables v1.8.9 (nf_tables backend) on Linux 6.x: a Ruleset per address family holds
// tables, each table holds chains (builtin chains hooked into the stack, and user chains
// reached by jumps), each chain holds ordered rules, and each rule has the basic IP matches
// (`-s -d -i -o -p -f`), an ordered list of match extensions (`-m tcp`, `-m comment`,
// `-m statistic` ...) and one target (`-j ACCEPT`, `-j KUBE-SVC-...`, `-j DNAT` ...).
//
// The model is portable: nothing here touches the operating system. It is filled by
// format/iptablessave (parse iptables-save output, apply iptables-restore input) and by the
// kube-proxy renderer, and read by the printer, the explainer and the evaluator.
//
// # Hooks and tables
//
// A packet crosses the netfilter hooks below; at each hook the tables registered there run in
// kernel priority order (lower first). This is the order in which the evaluator visits
// builtin chains, and it is available as data from [HookTables] and [Priority].
//
//	packet in
//	    │
//	PREROUTING: raw -300, mangle -150, nat -100 (DNAT)
//	    │
//	 routing ──────────────────────────┐
//	    │                              │
//	INPUT: mangle -150, filter 0,   FORWARD: mangle -150, filter 0,
//	       security 50, nat 100            security 50
//	    │                              │
//	local process                      │
//	    │                              │
//	OUTPUT: raw -300, mangle -150,     │
//	        nat -100 (DNAT), filter 0, │
//	        security 50                │
//	    │                              │
//	 routing ──────────────────────────┤
//	                                   │
//	                     POSTROUTING: mangle -150, nat 100 (SNAT)
//	                                   │
//	                               packet out
//
// The iptables-restore grammar, the iptables-save printer and the kernel round trip live in
// format/iptablessave and kernel.
package netfilter

// Ruleset is every table of one address family (what `iptables-save` or `ip6tables-save`
// prints). Tables are kept in the order the kernel lists them (see [TableOrder]).
type Ruleset struct {
	Family Family
	Tables []*Table
}

// Family is the address family of a ruleset.
type Family string

// Families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// TableName is an iptables table; the values are the `-t` tokens.
type TableName string

// The iptables tables.
const (
	Raw      TableName = "raw"
	Mangle   TableName = "mangle"
	NAT      TableName = "nat"
	Filter   TableName = "filter"
	Security TableName = "security"
)

// tableOrder is the order in which iptables v1.8.9 (nf_tables) `iptables-save` prints the
// tables that exist: its enum nft_table_type (NFT_TABLE_MANGLE, _SECURITY, _RAW, _FILTER,
// _NAT), verified against the real tool.
var tableOrder = [...]TableName{Mangle, Security, Raw, Filter, NAT}

// TableOrder returns the order in which `iptables-save` (v1.8.9, nf_tables) prints tables.
func TableOrder() []TableName { return append([]TableName(nil), tableOrder[:]...) }

// Valid reports whether t is one of the five iptables tables.
func (t TableName) Valid() bool {
	switch t {
	case Raw, Mangle, NAT, Filter, Security:
		return true
	}
	return false
}

// Table returns the table named name, or nil.
func (rs *Ruleset) Table(name TableName) *Table {
	for _, t := range rs.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// EnsureTable returns the table named name, creating it with its builtin chains (policy
// ACCEPT, zero counters) if it does not exist yet. New tables are inserted in [TableOrder].
//
// Equivalent to: `iptables -t NAME -S` (any command that touches a table instantiates it
// with its builtin chains).
func (rs *Ruleset) EnsureTable(name TableName) *Table {
	if t := rs.Table(name); t != nil {
		return t
	}
	t := NewTable(name)
	pos := len(rs.Tables)
	for i, old := range rs.Tables {
		if tableRank(old.Name) > tableRank(name) {
			pos = i
			break
		}
	}
	rs.Tables = append(rs.Tables, nil)
	copy(rs.Tables[pos+1:], rs.Tables[pos:])
	rs.Tables[pos] = t
	return t
}

func tableRank(n TableName) int {
	for i, t := range tableOrder {
		if t == n {
			return i
		}
	}
	return len(tableOrder)
}

// NewTable returns a table with its builtin chains (in hook order, policy ACCEPT).
func NewTable(name TableName) *Table {
	t := &Table{Name: name}
	for _, h := range BuiltinChains(name) {
		t.Chains = append(t.Chains, &Chain{Name: string(h), Builtin: true, Policy: PolicyAccept})
	}
	return t
}

// Table is one iptables table: its chains in declaration order. Builtin chains come first, in
// hook order, as the kernel creates them.
//
// Chain lookups use an index kept up to date by AddChain, EnsureChain and DeleteChain; code
// that edits Chains directly should call Reindex afterwards (appends and removals at the
// ends are detected without it).
type Table struct {
	Name   TableName
	Chains []*Chain

	// idx maps chain name to its position in Chains; rebuilt lazily when stale.
	idx map[string]int
}

// Chain returns the chain named name, or nil.
func (t *Table) Chain(name string) *Chain {
	if t.idx != nil {
		if i, ok := t.idx[name]; ok && i < len(t.Chains) && t.Chains[i].Name == name {
			return t.Chains[i]
		}
		if len(t.idx) == len(t.Chains) && !t.stale() {
			return nil
		}
	}
	if len(t.Chains) < 16 {
		for _, c := range t.Chains {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	t.reindex()
	if i, ok := t.idx[name]; ok {
		return t.Chains[i]
	}
	return nil
}

// stale reports whether the index disagrees with Chains (someone edited Chains directly).
func (t *Table) stale() bool {
	if len(t.idx) != len(t.Chains) {
		return true
	}
	// Spot-check the end, where appends happen (a changed length is caught above).
	if n := len(t.Chains); n > 0 {
		if j, ok := t.idx[t.Chains[n-1].Name]; !ok || j != n-1 {
			return true
		}
	}
	return false
}

// Grow reserves room for n more chains (in Chains and in the name index), so that adding
// many chains (a 10,000-Service kube-proxy dump declares over 100,000) does not rehash.
func (t *Table) Grow(n int) {
	if n <= 0 {
		return
	}
	if cap(t.Chains)-len(t.Chains) < n {
		chains := make([]*Chain, len(t.Chains), len(t.Chains)+n)
		copy(chains, t.Chains)
		t.Chains = chains
	}
	idx := make(map[string]int, len(t.Chains)+n)
	for i, c := range t.Chains {
		idx[c.Name] = i
	}
	t.idx = idx
}

// Reindex rebuilds the chain-name index after Chains was edited directly.
func (t *Table) Reindex() { t.reindex() }

func (t *Table) reindex() {
	t.idx = make(map[string]int, len(t.Chains))
	for i, c := range t.Chains {
		t.idx[c.Name] = i
	}
}

// AddChain appends a new empty user chain and returns it; it fails if the name is taken.
//
// Equivalent to: `iptables -t TABLE -N NAME`.
func (t *Table) AddChain(name string) (*Chain, error) {
	if t.Chain(name) != nil {
		return nil, &ChainError{Table: t.Name, Chain: name, Err: ErrChainExists}
	}
	c := &Chain{Name: name, Policy: PolicyNone}
	t.Chains = append(t.Chains, c)
	if t.idx != nil && len(t.idx) == len(t.Chains)-1 {
		t.idx[name] = len(t.Chains) - 1
	}
	return c, nil
}

// EnsureChain returns the chain named name, appending an empty user chain if it is absent.
//
// Equivalent to: `iptables -t TABLE -N NAME` when the chain does not exist.
func (t *Table) EnsureChain(name string) *Chain {
	if c := t.Chain(name); c != nil {
		return c
	}
	c, _ := t.AddChain(name)
	return c
}

// DeleteChain removes the user chain named name. As the kernel does, it refuses builtin
// chains, non-empty chains and chains that rules still jump to.
//
// Equivalent to: `iptables -t TABLE -X NAME`.
func (t *Table) DeleteChain(name string) error {
	c := t.Chain(name)
	if c == nil {
		return &ChainError{Table: t.Name, Chain: name, Err: ErrNoChain}
	}
	if c.Builtin {
		return &ChainError{Table: t.Name, Chain: name, Err: ErrBuiltinChain}
	}
	if len(c.Rules) > 0 {
		return &ChainError{Table: t.Name, Chain: name, Err: ErrChainNotEmpty}
	}
	if t.References(name) > 0 {
		return &ChainError{Table: t.Name, Chain: name, Err: ErrChainInUse}
	}
	for i, x := range t.Chains {
		if x == c {
			t.Chains = append(t.Chains[:i], t.Chains[i+1:]...)
			break
		}
	}
	t.idx = nil
	return nil
}

// References counts the rules of the table that jump or go to the chain named name.
func (t *Table) References(name string) int {
	n := 0
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if j, ok := r.Target.(*Jump); ok && j.Chain == name {
				n++
			}
		}
	}
	return n
}

// Policy is a builtin chain's default verdict; user chains have PolicyNone ("-").
type Policy string

// Policies.
const (
	PolicyAccept Policy = "ACCEPT"
	PolicyDrop   Policy = "DROP"
	PolicyNone   Policy = "-"
)

// Counters are packet and byte counters, printed `[packets:bytes]`.
type Counters struct {
	Packets uint64
	Bytes   uint64
}

// Chain is one chain: builtin (hooked, with a policy) or user-defined (policy "-").
type Chain struct {
	Name    string
	Builtin bool
	Policy  Policy
	// Counters are the policy counters of a builtin chain (`:INPUT ACCEPT [p:b]`).
	Counters Counters
	Rules    []*Rule
}

// Append adds r at the end of the chain.
//
// Equivalent to: `iptables -t TABLE -A CHAIN RULE`.
func (c *Chain) Append(r *Rule) { c.Rules = append(c.Rules, r) }

// Insert adds r before rule number pos (1-based, as iptables counts; pos == len+1 appends).
//
// Equivalent to: `iptables -t TABLE -I CHAIN POS RULE`.
func (c *Chain) Insert(pos int, r *Rule) error {
	if pos < 1 || pos > len(c.Rules)+1 {
		return &ChainError{Chain: c.Name, Err: ErrIndexOutOfRange}
	}
	c.Rules = append(c.Rules, nil)
	copy(c.Rules[pos:], c.Rules[pos-1:])
	c.Rules[pos-1] = r
	return nil
}

// Delete removes rule number pos (1-based).
//
// Equivalent to: `iptables -t TABLE -D CHAIN POS`.
func (c *Chain) Delete(pos int) error {
	if pos < 1 || pos > len(c.Rules) {
		return &ChainError{Chain: c.Name, Err: ErrIndexOutOfRange}
	}
	c.Rules = append(c.Rules[:pos-1], c.Rules[pos:]...)
	return nil
}

// Flush removes every rule of the chain (and zeroes nothing else).
//
// Equivalent to: `iptables -t TABLE -F CHAIN`.
func (c *Chain) Flush() { c.Rules = nil }

// Zero resets the chain's policy counters and every rule's counters.
//
// Equivalent to: `iptables -t TABLE -Z CHAIN`.
func (c *Chain) Zero() {
	c.Counters = Counters{}
	for _, r := range c.Rules {
		r.Counters = Counters{}
	}
}
