package netfilter

// The evaluator: one packet through the iptables tables of a Ruleset, hook by hook, in the
// kernel's order (see the package doc for the hook/table diagram), with every match and
// target's kernel semantics. Because `-m statistic --mode random` makes the path random,
// evaluation enumerates every possible outcome as a Branch with its probability, in rule
// order (the matched side of a probabilistic rule is explored first, so DNAT destinations
// come out in the order kube-proxy wrote its endpoint rules).
//
// Semantics mirrored (Linux 6.x, net/ipv4/netfilter/ip_tables.c ipt_do_table and the xt_*
// extensions):
//   - a builtin chain that runs off its end applies its policy; a user chain that runs off
//     its end returns to the rule after the jump (implicit RETURN); RETURN in a builtin chain
//     applies the policy;
//   - `-g CHAIN` does not push a return address, so a RETURN there returns to the caller of
//     the chain that did the goto;
//   - ACCEPT ends the table (the next table at the hook runs); DROP and REJECT end the packet;
//   - the nat table is only consulted for the first packet of a connection (conntrack NEW),
//     once per manipulation: DNAT at PREROUTING/OUTPUT, SNAT at INPUT/POSTROUTING; an
//     untracked packet (raw NOTRACK) skips nat; DNAT/SNAT/MASQUERADE/REDIRECT end the nat
//     table (NF_ACCEPT) and set the conntrack DNAT/SNAT status;
//   - statistic random: the kernel matches when (prandom_u32() & 0x7FFFFFFF) < P with
//     P = lround(0x80000000 * p), so the exact probability is P/2^31;
//   - statistic nth: the packet counter is not known, so a rule with `--every N` matches
//     with probability 1/N (a branch like random mode), and the branch says so;
//   - matches the model does not evaluate (Opaque, owner, physdev, icmp types, ...) are
//     assumed true (Env.AssumeUnknown, default true) and reported per branch, never silently.

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Decision is the verdict a table (or the whole path) reached for a packet; the values are
// the target tokens.
type Decision string

// Decisions.
const (
	DecisionNone   Decision = "" // still traversing
	DecisionAccept Decision = "ACCEPT"
	DecisionDrop   Decision = "DROP"
	DecisionReject Decision = "REJECT"
	// DecisionQueue is NFQUEUE/QUEUE: a userspace program decides.
	DecisionQueue Decision = "QUEUE"
)

// DecidedBy says how a verdict was reached; the values are the JSON tokens.
type DecidedBy string

// Ways a verdict is reached.
const (
	DecidedByRule   DecidedBy = "rule"
	DecidedByPolicy DecidedBy = "policy"
)

// Packet is the first packet of a connection (or a later one, by its conntrack state) as the
// netfilter hooks see it. Proto is an iptables protocol token ("tcp", "udp", "sctp", "icmp",
// "icmpv6" or a number).
type Packet struct {
	Src, Dst     netip.Addr
	Proto        string
	SPort, DPort uint16
	// InIface is the input interface (empty for locally generated packets), OutIface the
	// output interface chosen by routing (empty before routing or when unknown).
	InIface, OutIface string
	// Mark is the packet mark (skb->mark), ConnMark the connection mark (ct->mark).
	Mark, ConnMark uint32
	// State is the conntrack state: CTNew (the default when zero), CTEstablished,
	// CTRelated, CTInvalid or CTUntracked. The SNAT/DNAT virtual states are derived from
	// the NAT status bits below.
	State CTState
	// DNATed and SNATed are the conntrack IPS_DST_NAT/IPS_SRC_NAT status bits (set when a
	// DNAT/REDIRECT or SNAT/MASQUERADE target translated the connection).
	DNATed, SNATed bool
	// DstNATDone and SrcNATDone say the nat table already ran for this connection's
	// destination (PREROUTING/OUTPUT) or source (INPUT/POSTROUTING) manipulation: the kernel
	// consults nat once per manipulation type (nf_nat_initialized), so a locally generated
	// packet looped back through lo does not see nat PREROUTING again.
	DstNATDone, SrcNATDone bool
	// TCPFlags are the TCP header flags; zero means "SYN for a NEW TCP packet, ACK otherwise".
	TCPFlags uint8
	// Fragment says the packet is a non-first IPv4 fragment (`-f`).
	Fragment bool
	// Length is the IP packet length for `-m length`; zero means unknown.
	Length uint16
}

// state returns the effective conntrack state bits (including SNAT/DNAT virtual states).
func (p *Packet) state() CTState {
	s := p.State
	if s == 0 {
		s = CTNew
	}
	if p.DNATed {
		s |= CTDNAT
	}
	if p.SNATed {
		s |= CTSNAT
	}
	return s
}

func (p *Packet) tcpFlags() uint8 {
	if p.TCPFlags != 0 {
		return p.TCPFlags
	}
	if p.State == 0 || p.State == CTNew {
		return TCPFlagSYN
	}
	return TCPFlagACK
}

// LocalAddrs is the set of addresses configured on the node (what makes `--dst-type LOCAL`
// true). As the kernel does for `ip addr add 127.0.0.1/8 dev lo` (a `local 127.0.0.0/8`
// route), any 127.0.0.0/8 address is LOCAL when 127.0.0.1 is in the set.
type LocalAddrs struct {
	addrs map[netip.Addr]bool
	// Broadcast holds directed broadcast addresses (e.g. 192.168.0.255 for 192.168.0.2/24).
	broadcast map[netip.Addr]bool
}

// NewLocalAddrs returns the set of local addresses.
func NewLocalAddrs(addrs ...netip.Addr) *LocalAddrs {
	l := &LocalAddrs{addrs: map[netip.Addr]bool{}, broadcast: map[netip.Addr]bool{}}
	for _, a := range addrs {
		l.addrs[a.Unmap()] = true
	}
	return l
}

// AddBroadcast records a directed broadcast address of a configured prefix.
func (l *LocalAddrs) AddBroadcast(a netip.Addr) { l.broadcast[a.Unmap()] = true }

// Addrs returns the local addresses, sorted.
func (l *LocalAddrs) Addrs() []netip.Addr {
	if l == nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(l.addrs))
	for a := range l.addrs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

var loopback4 = netip.MustParsePrefix("127.0.0.0/8")

// IsLocal reports whether a is a local address.
func (l *LocalAddrs) IsLocal(a netip.Addr) bool {
	if l == nil {
		return false
	}
	a = a.Unmap()
	if l.addrs[a] {
		return true
	}
	return loopback4.Contains(a) && l.addrs[netip.AddrFrom4([4]byte{127, 0, 0, 1})]
}

// Type returns the kernel address type of a (inet_addr_type / xt_addrtype): LOCAL for a local
// address, BROADCAST, MULTICAST, UNSPEC for the unspecified address, else UNICAST (the model
// assumes a route exists; with no route the kernel says UNREACHABLE).
func (l *LocalAddrs) Type(a netip.Addr) AddrType {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return AddrUnspec
	case l.IsLocal(a):
		return AddrLocal
	case a.IsMulticast():
		return AddrMulticast
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || (l != nil && l.broadcast[a]):
		return AddrBroadcast
	}
	return AddrUnicast
}

// SetMatcher answers `-m set --match-set NAME DIRS` for a packet; the ipset model implements
// it. dirs are "src"/"dst" per set dimension. An error means the set does not exist or
// cannot be matched (the kernel would have refused such a rule).
type SetMatcher interface {
	MatchSet(name string, dirs []string, p Packet) (bool, error)
}

// RecentEntry is one address in an xt_recent list.
type RecentEntry struct {
	Addr netip.Addr
	// SecondsAgo is how long ago the address was last seen.
	SecondsAgo uint32
	// Hits is how many times it was seen (at least 1).
	Hits uint32
}

// RecentState is the content of the xt_recent lists (/proc/net/xt_recent/NAME), by list name.
// It is an input (empty by default: no client has affinity yet) and `--set`/`--update`
// update a branch's copy of it.
type RecentState map[string][]RecentEntry

func (r RecentState) lookup(name string, a netip.Addr) (RecentEntry, bool) {
	for _, e := range r[name] {
		if e.Addr == a {
			return e, true
		}
	}
	return RecentEntry{}, false
}

// clone copies the state (for a branch that writes to it).
func (r RecentState) clone() RecentState {
	out := make(RecentState, len(r))
	for k, v := range r {
		out[k] = slices.Clone(v)
	}
	return out
}

// Env is what evaluation reads besides the packet and the rules.
type Env struct {
	// Local is the node's local addresses (addrtype LOCAL).
	Local *LocalAddrs
	// Sets answers `-m set`; nil means no ipset state was given (set matches are then
	// assumed and reported).
	Sets SetMatcher
	// Recent is the initial xt_recent state; nil is empty.
	Recent RecentState
	// AssumeUnknown is the value assumed for a match the model cannot evaluate
	// (reported in Branch.Assumed). The zero Env assumes false; NewEnv sets true.
	AssumeUnknown bool
	// NoSteps turns off recording the steps of each branch (Branch.Steps is then empty),
	// for bulk checks that only need verdicts, translations and events.
	NoSteps bool
}

// NewEnv returns an Env with the given local addresses that assumes unknown matches true.
func NewEnv(local *LocalAddrs) *Env { return &Env{Local: local, AssumeUnknown: true} }

// Step is one rule (or policy) a branch went through: a rule whose matches all held, with its
// target taken, or the policy of a builtin chain.
type Step struct {
	Hook  Hook
	Table TableName
	Chain string
	// Num is the rule's 1-based position in the chain (0 for a policy step).
	Num  int
	Rule *Rule
	// Policy is set when the step is the chain's policy (or a RETURN from a builtin chain).
	Policy Policy
	// Probability is the probability of this rule matching given that it was reached (1
	// unless the rule has a statistic match); Negated says the branch is the one where the
	// probabilistic rule did not match (then Rule's target was not taken).
	Probability float64
	Negated     bool
}

// EventKind names what a target did to a packet; the values are the target names.
type EventKind string

// Events recorded on a branch.
const (
	EventDNAT       EventKind = "DNAT"
	EventSNAT       EventKind = "SNAT"
	EventMasquerade EventKind = "MASQUERADE"
	EventRedirect   EventKind = "REDIRECT"
	EventMark       EventKind = "MARK"
	EventConnmark   EventKind = "CONNMARK"
	EventLog        EventKind = "LOG"
	EventNotrack    EventKind = "NOTRACK"
	EventCT         EventKind = "CT"
	EventRecentSet  EventKind = "recent"
	EventNFAcct     EventKind = "nfacct"
	EventOther      EventKind = "other"
)

// Event is one effect of a target (or a counting match) on a branch.
type Event struct {
	Kind  EventKind
	Hook  Hook
	Table TableName
	Chain string
	Num   int
	// To is the translated address for DNAT/SNAT/REDIRECT (port 0 when unchanged... never:
	// the port of the packet after the translation).
	To netip.AddrPort
	// Mark and ConnMark are the packet and connection marks after a MARK/CONNMARK target.
	Mark, ConnMark uint32
	// Detail says more in words (the log target, a NAT range, ...).
	Detail string
}

// Assumption is a match the evaluator could not evaluate and assumed.
type Assumption struct {
	Hook   Hook
	Table  TableName
	Chain  string
	Num    int
	Line   int
	Match  string
	Value  bool
	Reason string
}

// Branch is one possible way through the hooks evaluated so far, with its probability.
type Branch struct {
	Probability float64
	Packet      Packet
	// Verdict is the verdict of the last table that decided (ACCEPT between tables); DROP,
	// REJECT and QUEUE end the branch.
	Verdict   Decision
	DecidedBy DecidedBy
	// FilterVerdict/FilterDecidedBy are those of the last filter table traversed.
	FilterVerdict   Decision
	FilterDecidedBy DecidedBy
	// path is the branch's steps as a persistent list (forks share their prefix), nodes
	// allocated from an arena shared by every branch of one trace; see Steps.
	path    *pathNode
	pathLen int
	arena   *stepArena
	// Events are what the targets did (empty when Env.NoSteps); Masqueraded and FirstDNAT
	// are kept either way.
	Events      []Event
	Assumed     []Assumption
	Recent      RecentState
	recentOwned bool
	masq        bool
	firstDNAT   netip.AddrPort
}

// Done reports whether the branch was dropped, rejected or queued.
func (b *Branch) Done() bool {
	return b.Verdict == DecisionDrop || b.Verdict == DecisionReject || b.Verdict == DecisionQueue
}

// Masqueraded reports whether a MASQUERADE or SNAT target fired on the branch.
func (b *Branch) Masqueraded() bool { return b.masq }

// FirstDNAT returns the destination of the branch's first DNAT or REDIRECT, and whether
// there was one (a connection is destination-translated at most once).
func (b *Branch) FirstDNAT() (netip.AddrPort, bool) { return b.firstDNAT, b.firstDNAT.IsValid() }

// DNATs returns the DNAT/REDIRECT destinations of the branch in order.
func (b *Branch) DNATs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, e := range b.Events {
		if e.Kind == EventDNAT || e.Kind == EventRedirect {
			out = append(out, e.To)
		}
	}
	return out
}

func (b *Branch) fork(p float64) *Branch {
	nb := *b
	nb.Probability = p
	nb.Events = b.Events[:len(b.Events):len(b.Events)]
	nb.Assumed = b.Assumed[:len(b.Assumed):len(b.Assumed)]
	nb.recentOwned = false
	b.recentOwned = false
	return &nb
}

// NewBranch starts a trace of p with probability 1 and the Env's recent state.
func NewBranch(p Packet, env *Env) *Branch {
	var r RecentState
	if env != nil {
		r = env.Recent
	}
	return &Branch{Probability: 1, Packet: p, Recent: r, arena: &stepArena{}}
}

type pathNode struct {
	Step
	prev *pathNode
}

// stepArena hands out path nodes in chunks, so a trace with many branches and steps does a
// handful of allocations.
type stepArena struct {
	buf    []pathNode
	frames []frame
}

func (a *stepArena) add(s Step, prev *pathNode) *pathNode {
	if len(a.buf) == cap(a.buf) {
		a.buf = make([]pathNode, 0, 64)
	}
	a.buf = append(a.buf, pathNode{Step: s, prev: prev})
	return &a.buf[len(a.buf)-1]
}

func (b *Branch) addStep(s Step) {
	if b.arena == nil {
		b.arena = &stepArena{}
	}
	b.path = b.arena.add(s, b.path)
	b.pathLen++
}

// Steps returns the rules (and policies) the branch went through, in order.
func (b *Branch) Steps() []Step {
	out := make([]Step, b.pathLen)
	i := b.pathLen
	for n := b.path; n != nil; n = n.prev {
		i--
		out[i] = n.Step
	}
	return out
}

// StepCount returns the number of steps so far (len(Steps()) without building them).
func (b *Branch) StepCount() int { return b.pathLen }

// Evaluator evaluates packets against one Ruleset. It is built once (NewEvaluator checks the
// jump graph, as the kernel does at load time) and is safe for concurrent use. Changing the
// Ruleset afterwards requires a new Evaluator.
type Evaluator struct {
	family Family
	tables map[TableName]*evTable
	// hooks[h][k] is the builtin chain of the k-th table at hook h (nil when absent), in
	// kernel priority order, resolved once.
	hooks [5][5]*evChain
	// indexed says chain dispatch indexes are used (see index.go).
	indexed bool
}

type evTable struct {
	name   TableName
	chains map[string]*evChain
}

type evChain struct {
	name    string
	builtin bool
	policy  Policy
	rules   []evRule
	idx     *chainIndex
}

type targetKind uint8

const (
	tNone targetKind = iota
	tAccept
	tDrop
	tReject
	tReturn
	tQueue
	tJump
	tGoto
	tDNAT
	tSNAT
	tMasquerade
	tRedirect
	tMark
	tConnmark
	tLog
	tNotrack
	tCT
	tOther
)

type evRule struct {
	r     *Rule
	num   int
	kind  targetKind
	chain *evChain // jump/goto destination
	// nat targets
	natAddr  netip.Addr
	natPort  uint16
	natRange bool
	// random is the probability the rule's statistic matches hold (1 without statistic).
	random float64
	nth    bool
	target Target
	// proto is the -p protocol number when protoKnown.
	proto      uint8
	protoKnown bool
	// Copies of the rule's basic matches, and its match extensions minus the no-ops
	// (comment, limit, statistic), so that rejecting a rule reads only this struct.
	src, dst              AddrMatch
	protoSet, protoInvert bool
	ifaces                bool
	frag                  Fragment
	ms                    []Match
}

// LoopError is returned for a ruleset whose jumps form a cycle; the kernel refuses to load
// such a table (ELOOP, "Too many levels of symbolic links" from iptables-restore).
type LoopError struct {
	Table TableName
	Cycle []string
}

func (e *LoopError) Error() string {
	return fmt.Sprintf("table %s: jump loop %s: too many levels of symbolic links (ELOOP)", e.Table, strings.Join(e.Cycle, " -> "))
}

// ErrLoop is matched by errors.Is for a *LoopError.
var ErrLoop = errors.New("jump loop")

// Is makes errors.Is(err, ErrLoop) true.
func (e *LoopError) Is(target error) bool { return target == ErrLoop }

// NewEvaluator compiles rs for evaluation with linear (in-order) rule scanning. It fails if a
// rule jumps to a chain that does not exist or the jumps form a loop, as iptables-restore
// would.
func NewEvaluator(rs *Ruleset) (*Evaluator, error) { return newEvaluator(rs, indexMinRules) }

func newEvaluator(rs *Ruleset, minIndex int) (*Evaluator, error) {
	if rs == nil {
		return nil, errors.New("netfilter: nil ruleset")
	}
	ev := &Evaluator{family: rs.Family, tables: map[TableName]*evTable{}}
	for _, t := range rs.Tables {
		et := &evTable{name: t.Name, chains: make(map[string]*evChain, len(t.Chains))}
		for _, c := range t.Chains {
			et.chains[c.Name] = &evChain{name: c.Name, builtin: c.Builtin, policy: c.Policy}
		}
		for _, c := range t.Chains {
			ec := et.chains[c.Name]
			ec.rules = make([]evRule, len(c.Rules))
			for i, r := range c.Rules {
				er, err := compileRule(et, r)
				if err != nil {
					return nil, fmt.Errorf("table %s chain %s rule %d%s: %w", t.Name, c.Name, i+1, lineSuffix(r.Line), err)
				}
				er.num = i + 1
				ec.rules[i] = er
			}
		}
		if err := checkLoops(t, et); err != nil {
			return nil, err
		}
		for _, c := range et.chains {
			c.idx = buildIndex(c, minIndex)
		}
		ev.tables[t.Name] = et
	}
	for hi, h := range Hooks() {
		tables, nt := hookTableArray(h)
		for k, tn := range tables[:nt] {
			if t := ev.tables[tn]; t != nil {
				ev.hooks[hi][k] = t.chains[string(h)]
			}
		}
	}
	return ev, nil
}

func lineSuffix(l int) string {
	if l <= 0 {
		return ""
	}
	return " (line " + strconv.Itoa(l) + ")"
}

func compileRule(t *evTable, r *Rule) (evRule, error) {
	er := evRule{r: r, random: 1, target: r.Target}
	if r.Proto.IsSet() {
		er.proto, er.protoKnown = r.Proto.Number()
		er.protoSet, er.protoInvert = true, r.Proto.Invert
	}
	er.src, er.dst, er.frag = r.Src, r.Dst, r.Fragment
	er.ifaces = r.In.IsSet() || r.Out.IsSet()
	for _, m := range r.Matches {
		switch m.(type) {
		case *Comment, *Limit, *Statistic:
		default:
			er.ms = append(er.ms, m)
		}
	}
	for _, m := range r.Matches {
		if s, ok := m.(*Statistic); ok {
			var p float64
			switch s.Mode {
			case StatisticNth:
				every := s.Every
				if every == 0 {
					every = 1
				}
				p = 1 / float64(every)
				er.nth = true
			default:
				p = float64(s.Probability) / 0x80000000
				if p > 1 {
					p = 1
				}
			}
			if s.Invert {
				p = 1 - p
			}
			er.random *= p
		}
	}
	if err := compileTarget(t, &er); err != nil {
		return er, err
	}
	return er, nil
}

// checkLoops walks the jump graph from every chain (mark_source_chains in the kernel).
func checkLoops(t *Table, et *evTable) error {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(c *evChain) error
	visit = func(c *evChain) error {
		color[c.name] = grey
		stack = append(stack, c.name)
		for i := range c.rules {
			d := c.rules[i].chain
			if d == nil {
				continue
			}
			switch color[d.name] {
			case grey:
				start := slices.Index(stack, d.name)
				cyc := append(slices.Clone(stack[start:]), d.name)
				return &LoopError{Table: t.Name, Cycle: cyc}
			case white:
				if err := visit(d); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[c.name] = black
		return nil
	}
	for _, c := range t.Chains {
		if color[c.Name] == white {
			if err := visit(et.chains[c.Name]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Family returns the address family of the evaluated ruleset.
func (ev *Evaluator) Family() Family { return ev.family }

// Hook runs every branch in through the tables registered at hook h, in priority order, and
// returns the resulting branches (branches already done pass through unchanged). Branches
// fork at probabilistic rules; the result lists them depth-first in rule order.
func (ev *Evaluator) Hook(h Hook, env *Env, in []*Branch) []*Branch {
	if env == nil {
		env = &Env{}
	}
	return ev.hookFrom(h, env, in, 0)
}

// hookFrom runs the tables of hook h from the first-th on.
func (ev *Evaluator) hookFrom(h Hook, env *Env, in []*Branch, first int) []*Branch {
	cur := in
	tables, nt := hookTableArray(h)
	hi := hookIndex(h)
	if hi < 0 || len(in) == 0 {
		return in
	}
	var spare []*Branch
	for k, tn := range tables[:nt] {
		if k < first {
			continue
		}
		c := ev.hooks[hi][k]
		if c == nil {
			continue
		}
		if spare == nil {
			spare = make([]*Branch, 0, 2*len(cur)+4)
		}
		x := run{ev: ev, env: env, hook: h, table: tn, out: spare[:0]}
		for _, b := range cur {
			if b.Done() || (tn == NAT && natSkipped(h, &b.Packet)) {
				x.out = append(x.out, b)
				continue
			}
			x.pnum, x.pok = ProtoNumber(b.Packet.Proto)
			x.chain(c, 0, nil, b)
		}
		if tn == NAT {
			for _, b := range x.out {
				if h == Prerouting || h == Output {
					b.Packet.DstNATDone = true
				} else {
					b.Packet.SrcNATDone = true
				}
			}
		}
		if &cur[0] != &in[0] {
			spare = cur // reuse the previous table's slice
		}
		cur = x.out
	}
	return cur
}

func hookIndex(h Hook) int {
	switch h {
	case Prerouting:
		return 0
	case Input:
		return 1
	case Forward:
		return 2
	case Output:
		return 3
	case Postrouting:
		return 4
	}
	return -1
}

// hookTableArray is HookTables without an allocation.
func hookTableArray(h Hook) ([5]TableName, int) {
	switch h {
	case Prerouting:
		return [5]TableName{Raw, Mangle, NAT}, 3
	case Input:
		return [5]TableName{Mangle, Filter, Security, NAT}, 4
	case Forward:
		return [5]TableName{Mangle, Filter, Security}, 3
	case Output:
		return [5]TableName{Raw, Mangle, NAT, Filter, Security}, 5
	case Postrouting:
		return [5]TableName{Mangle, NAT}, 2
	}
	return [5]TableName{}, 0
}

// HookOne runs the single branch b through hook h. It returns nil when b did not fork (b
// itself then holds the result), else every resulting branch, as Hook does.
func (ev *Evaluator) HookOne(h Hook, env *Env, b *Branch) []*Branch {
	if env == nil {
		env = &Env{}
	}
	tables, nt := hookTableArray(h)
	hi := hookIndex(h)
	if hi < 0 {
		return nil
	}
	for k, tn := range tables[:nt] {
		c := ev.hooks[hi][k]
		if c == nil || b.Done() || (tn == NAT && natSkipped(h, &b.Packet)) {
			continue
		}
		x := run{ev: ev, env: env, hook: h, table: tn, single: true}
		x.pnum, x.pok = ProtoNumber(b.Packet.Proto)
		x.chain(c, 0, nil, b)
		if tn == NAT {
			if !x.forked {
				if h == Prerouting || h == Output {
					b.Packet.DstNATDone = true
				} else {
					b.Packet.SrcNATDone = true
				}
			}
			for _, o := range x.out {
				if h == Prerouting || h == Output {
					o.Packet.DstNATDone = true
				} else {
					o.Packet.SrcNATDone = true
				}
			}
		}
		if x.forked {
			// Forked: the remaining tables run on every branch.
			rest := append([]*Branch(nil), x.out...)
			return ev.hookFrom(h, env, rest, k+1)
		}
	}
	return nil
}

// Eval is Hook for a single packet starting a trace.
func (ev *Evaluator) Eval(h Hook, env *Env, p Packet) []*Branch {
	return ev.Hook(h, env, []*Branch{NewBranch(p, env)})
}

func natSkipped(h Hook, p *Packet) bool {
	st := p.State
	if st != 0 && st != CTNew {
		return true // nat only sees a connection's first packet (and never untracked ones)
	}
	if h == Prerouting || h == Output {
		return p.DstNATDone
	}
	return p.SrcNATDone
}

type frame struct {
	c      *evChain
	next   int
	parent *frame
}

// emit records a branch that finished the table.
func (x *run) emit(b *Branch) {
	if x.single && !x.forked {
		if x.first == nil {
			x.first = b
			return
		}
		x.forked = true
		x.out = append(make([]*Branch, 0, 16), x.first)
	}
	x.out = append(x.out, b)
}

// frame allocates a return frame from the run's slab (frames are immutable and shared by
// forked branches, so they live as long as the slab).
func (x *run) frame(b *Branch, c *evChain, next int, parent *frame) *frame {
	if b.arena == nil {
		b.arena = &stepArena{}
	}
	a := b.arena
	if len(a.frames) == cap(a.frames) {
		a.frames = make([]frame, 0, 32)
	}
	a.frames = append(a.frames, frame{c: c, next: next, parent: parent})
	return &a.frames[len(a.frames)-1]
}

type run struct {
	// single: the caller passed one branch and wants no slice unless it forks (forked).
	single, forked bool
	first          *Branch
	ev             *Evaluator
	env            *Env
	hook           Hook
	table          TableName
	// out collects the branches that finished the table, in order.
	out []*Branch
	// pnum is the packet's protocol number (pok: known); the protocol never changes.
	pnum uint8
	pok  bool
}

// maxDepth bounds the jump stack as the kernel's per-cpu jumpstack does (the loop check at
// load time makes it unreachable in practice).
const maxDepth = 1024

func (x *run) step(c *evChain, r *evRule, b *Branch, prob float64, negated bool) {
	if x.env.NoSteps {
		return
	}
	b.addStep(Step{Hook: x.hook, Table: x.table, Chain: c.name, Num: r.num, Rule: r.r, Probability: prob, Negated: negated})
}

// chain evaluates from rule i of c with the given return stack, emitting each finished
// branch (verdict set for the table) to x.out.
func (x *run) chain(c *evChain, i int, stack *frame, b *Branch) {
	depth := 0
	for f := stack; f != nil; f = f.parent {
		depth++
	}
	for {
		if x.ev.indexed && c.idx != nil {
			i = c.idx.next(i, &b.Packet, x.pnum, len(c.rules))
		}
		if i >= len(c.rules) {
			if c.builtin || stack == nil {
				x.policy(c, b)
				x.emit(b)
				return
			}
			c, i, stack = stack.c, stack.next, stack.parent
			depth--
			continue
		}
		r := &c.rules[i]
		if !x.matches(c, r, b) {
			i++
			continue
		}
		if r.random < 1 {
			if r.random <= 0 {
				i++
				continue
			}
			nb := b.fork(b.Probability * (1 - r.random))
			b.Probability *= r.random
			x.step(c, r, nb, 1-r.random, true)
			x.step(c, r, b, r.random, false)
			// The matched side first: destinations come out in rule order.
			x.target(c, i, stack, depth, r, b)
			x.chain(c, i+1, stack, nb)
			return
		}
		cont, nc, ni, nstack := x.apply(c, i, stack, depth, r, b)
		if !cont {
			x.emit(b)
			return
		}
		if nc != c || nstack != stack {
			depth = 0
			for f := nstack; f != nil; f = f.parent {
				depth++
			}
		}
		c, i, stack = nc, ni, nstack
	}
}

// target applies r's target to b and continues evaluation to the end of the table.
func (x *run) target(c *evChain, i int, stack *frame, depth int, r *evRule, b *Branch) {
	cont, nc, ni, nstack := x.apply(c, i, stack, depth, r, b)
	if !cont {
		x.emit(b)
		return
	}
	x.chain(nc, ni, nstack, b)
}

func (x *run) policy(c *evChain, b *Branch) {
	pol := c.policy
	if pol == PolicyNone || pol == "" {
		pol = PolicyAccept
	}
	// An empty builtin chain with policy ACCEPT outside filter (raw, mangle, nat tables that
	// exist but hold nothing at this hook) decides nothing worth a step.
	if !x.env.NoSteps && (len(c.rules) > 0 || pol != PolicyAccept || x.table == Filter) {
		b.addStep(Step{Hook: x.hook, Table: x.table, Chain: c.name, Policy: pol, Probability: 1})
	}
	x.decide(b, Decision(pol), DecidedByPolicy)
}

func (x *run) decide(b *Branch, v Decision, by DecidedBy) {
	b.Verdict, b.DecidedBy = v, by
	if x.table == Filter {
		b.FilterVerdict, b.FilterDecidedBy = v, by
	}
}

// apply runs the target of the matched rule r (rule i of c). It returns whether evaluation
// continues in this table and where.
func (x *run) apply(c *evChain, i int, stack *frame, depth int, r *evRule, b *Branch) (bool, *evChain, int, *frame) {
	if r.random == 1 {
		x.step(c, r, b, 1, false)
	}
	switch r.kind {
	case tNone:
		return true, c, i + 1, stack
	case tAccept:
		x.decide(b, DecisionAccept, DecidedByRule)
		return false, nil, 0, nil
	case tDrop:
		x.decide(b, DecisionDrop, DecidedByRule)
		return false, nil, 0, nil
	case tReject:
		x.decide(b, DecisionReject, DecidedByRule)
		return false, nil, 0, nil
	case tQueue:
		x.decide(b, DecisionQueue, DecidedByRule)
		return false, nil, 0, nil
	case tReturn:
		if stack == nil {
			if c.builtin {
				x.policy(c, b)
				return false, nil, 0, nil
			}
			// A user chain entered directly (not through a builtin chain) returns to nothing.
			x.policy(c, b)
			return false, nil, 0, nil
		}
		return true, stack.c, stack.next, stack.parent
	case tJump:
		if depth >= maxDepth {
			x.decide(b, DecisionDrop, DecidedByRule)
			return false, nil, 0, nil
		}
		return true, r.chain, 0, x.frame(b, c, i+1, stack)
	case tGoto:
		return true, r.chain, 0, stack
	case tDNAT, tRedirect:
		addr, port := r.natAddr, r.natPort
		kind := EventDNAT
		if r.kind == tRedirect {
			kind = EventRedirect
			addr = x.redirectAddr(b)
		}
		if !addr.IsValid() {
			addr = b.Packet.Dst
		}
		if port == 0 {
			port = b.Packet.DPort
		}
		b.Packet.Dst, b.Packet.DPort = addr, port
		b.Packet.DNATed = true
		x.event(b, c, r, kind, netip.AddrPortFrom(addr, port), x.natDetail(r))
		x.decide(b, DecisionAccept, DecidedByRule)
		return false, nil, 0, nil
	case tSNAT:
		addr, port := r.natAddr, r.natPort
		if !addr.IsValid() {
			addr = b.Packet.Src
		}
		if port == 0 {
			port = b.Packet.SPort
		}
		b.Packet.Src, b.Packet.SPort = addr, port
		b.Packet.SNATed = true
		x.event(b, c, r, EventSNAT, netip.AddrPortFrom(addr, port), x.natDetail(r))
		x.decide(b, DecisionAccept, DecidedByRule)
		return false, nil, 0, nil
	case tMasquerade:
		// The source becomes the primary address of the output interface, which the
		// netfilter model does not know; the source is left as is and the event says so.
		b.Packet.SNATed = true
		x.event(b, c, r, EventMasquerade, netip.AddrPort{}, "source becomes the address of the output interface")
		x.decide(b, DecisionAccept, DecidedByRule)
		return false, nil, 0, nil
	case tMark:
		m := r.target.(*MarkTarget)
		b.Packet.Mark = (b.Packet.Mark &^ m.Mask) ^ m.Value
		x.event(b, c, r, EventMark, netip.AddrPort{}, "")
		return true, c, i + 1, stack
	case tConnmark:
		m := r.target.(*ConnmarkTarget)
		b.Packet.Mark, b.Packet.ConnMark = connmark(m, b.Packet.Mark, b.Packet.ConnMark)
		x.event(b, c, r, EventConnmark, netip.AddrPort{}, "")
		return true, c, i + 1, stack
	case tLog:
		x.event(b, c, r, EventLog, netip.AddrPort{}, r.target.TargetName())
		return true, c, i + 1, stack
	case tNotrack:
		b.Packet.State = CTUntracked
		x.event(b, c, r, EventNotrack, netip.AddrPort{}, "untracked: nat and conntrack matches no longer see a NEW connection")
		return true, c, i + 1, stack
	case tCT:
		x.event(b, c, r, EventCT, netip.AddrPort{}, "CT")
		return true, c, i + 1, stack
	default: // tOther: a target the model does not simulate; assumed non-terminating.
		x.event(b, c, r, EventOther, netip.AddrPort{}, r.target.TargetName()+" (not simulated, assumed to continue)")
		return true, c, i + 1, stack
	}
}

func (x *run) natDetail(r *evRule) string {
	if r.natRange {
		return "range: the first address/port of the range is shown"
	}
	return ""
}

// redirectAddr is REDIRECT's new destination: the loopback address for locally generated
// packets, else the primary address of the input interface (the model takes the first local
// non-loopback address of the packet's family).
func (x *run) redirectAddr(b *Branch) netip.Addr {
	v4 := b.Packet.Dst.Unmap().Is4()
	if x.hook == Output {
		if v4 {
			return netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		return netip.IPv6Loopback()
	}
	for _, a := range x.env.Local.Addrs() {
		if a.Is4() == v4 && !a.IsLoopback() {
			return a
		}
	}
	return b.Packet.Dst
}

func (x *run) event(b *Branch, c *evChain, r *evRule, k EventKind, to netip.AddrPort, detail string) {
	switch k {
	case EventMasquerade, EventSNAT:
		b.masq = true
	case EventDNAT, EventRedirect:
		if !b.firstDNAT.IsValid() {
			b.firstDNAT = to
		}
	}
	if x.env.NoSteps {
		return
	}
	b.Events = append(b.Events, Event{Kind: k, Hook: x.hook, Table: x.table, Chain: c.name, Num: r.num, To: to, Mark: b.Packet.Mark, ConnMark: b.Packet.ConnMark, Detail: detail})
}

func (x *run) assume(b *Branch, c *evChain, r *evRule, match, reason string) bool {
	v := x.env.AssumeUnknown
	b.Assumed = append(b.Assumed, Assumption{Hook: x.hook, Table: x.table, Chain: c.name, Num: r.num, Line: r.r.Line, Match: match, Value: v, Reason: reason})
	return v
}

// ifaceKnown says whether an interface exists at this hook for `-i` (in) or `-o` (out).
func (x *run) ifaceMatch(b *Branch, c *evChain, r *evRule, m IfaceMatch, name string, in bool) bool {
	if !m.IsSet() {
		return true
	}
	if name == "" {
		hasIface := (in && x.hook != Output && x.hook != Postrouting) || (!in && x.hook != Prerouting && x.hook != Input)
		if hasIface {
			opt := "-o"
			if in {
				opt = "-i"
			}
			if m.Invert {
				opt = "! " + opt
			}
			return x.assume(b, c, r, opt+" "+m.Name, "the packet's interface is not known")
		}
	}
	return m.Matches(name)
}

// matches evaluates every deterministic match of r (statistic matches are handled by the
// caller as a branch).
func (x *run) matches(c *evChain, r *evRule, b *Branch) bool {
	// Only the evRule (contiguous in the chain) is read until a rule can match: the Rule
	// itself is touched for the match extensions that do something.
	p := &b.Packet
	if !r.src.Matches(p.Src) || !r.dst.Matches(p.Dst) {
		return false
	}
	if r.protoSet {
		if !r.protoKnown || !x.pok {
			if !x.assume(b, c, r, "-p "+r.r.Proto.Name, "unknown protocol") {
				return false
			}
		} else if (r.proto == x.pnum) == r.protoInvert {
			return false
		}
	}
	if r.ifaces && (!x.ifaceMatch(b, c, r, r.r.In, p.InIface, true) || !x.ifaceMatch(b, c, r, r.r.Out, p.OutIface, false)) {
		return false
	}
	switch r.frag {
	case FragmentOnly:
		if !p.Fragment {
			return false
		}
	case FragmentNotOnly:
		if p.Fragment {
			return false
		}
	}
	for _, m := range r.ms {
		if !x.match(c, r, b, m) {
			return false
		}
	}
	return true
}

func portMatches(m PortMatch, port uint16) bool { return m.Matches(port) }

func (x *run) match(c *evChain, r *evRule, b *Branch, m Match) bool {
	p := &b.Packet
	switch m := m.(type) {
	case *Comment, *Limit, *Statistic:
		// comment: no-op; limit: assumed under the limit; statistic: a branch (caller).
		return true
	case *NFAcct:
		return true
	case *TCP:
		if !portMatches(m.SPort, p.SPort) || !portMatches(m.DPort, p.DPort) {
			return false
		}
		if m.FlagsSet {
			if (p.tcpFlags()&m.FlagsMask == m.FlagsComp) == m.FlagsInvert {
				return false
			}
		}
		if m.OptionSet {
			return x.assume(b, c, r, "--tcp-option", "TCP options are not modelled")
		}
		return true
	case *UDP:
		return portMatches(m.SPort, p.SPort) && portMatches(m.DPort, p.DPort)
	case *SCTP:
		if !portMatches(m.SPort, p.SPort) || !portMatches(m.DPort, p.DPort) {
			return false
		}
		if len(m.Chunks) > 0 {
			return x.assume(b, c, r, "--chunk-types", "SCTP chunks are not modelled")
		}
		return true
	case *Multiport:
		in := func(port uint16) bool {
			for _, pr := range m.Ports {
				if pr.Contains(port) {
					return true
				}
			}
			return false
		}
		var ok bool
		switch m.Dir {
		case MultiportSource:
			ok = in(p.SPort)
		case MultiportDest:
			ok = in(p.DPort)
		default:
			ok = in(p.SPort) || in(p.DPort)
		}
		return ok != m.Invert
	case *Mark:
		return (p.Mark&m.Mask == m.Value) != m.Invert
	case *Connmark:
		return (p.ConnMark&m.Mask == m.Value) != m.Invert
	case *Conntrack:
		return x.conntrack(b, c, r, m)
	case *State:
		s := p.state() &^ (CTSNAT | CTDNAT)
		return (s&m.States != 0) != m.Invert
	case *AddrTypeMatch:
		if m.SrcType != 0 && (x.env.Local.Type(p.Src)&m.SrcType != 0) == m.SrcInvert {
			return false
		}
		if m.DstType != 0 && (x.env.Local.Type(p.Dst)&m.DstType != 0) == m.DstInvert {
			return false
		}
		return true
	case *IPRange:
		if m.SrcLo.IsValid() {
			in := p.Src.Compare(m.SrcLo) >= 0 && p.Src.Compare(m.SrcHi) <= 0
			if in == m.SrcInvert {
				return false
			}
		}
		if m.DstLo.IsValid() {
			in := p.Dst.Compare(m.DstLo) >= 0 && p.Dst.Compare(m.DstHi) <= 0
			if in == m.DstInvert {
				return false
			}
		}
		return true
	case *Recent:
		return x.recent(b, c, r, m)
	case *SetMatch:
		if x.env.Sets == nil {
			return x.assume(b, c, r, "--match-set "+m.Name, "no ipset state given")
		}
		ok, err := x.env.Sets.MatchSet(m.Name, m.Dirs, *p)
		if err != nil {
			return x.assume(b, c, r, "--match-set "+m.Name, err.Error())
		}
		return ok != m.Invert
	case *Length:
		if p.Length == 0 {
			return x.assume(b, c, r, "-m length", "packet length not given")
		}
		return (p.Length >= m.Min && p.Length <= m.Max) != m.Invert
	case *ICMP:
		return x.assume(b, c, r, "-m "+m.Module(), "ICMP types are not modelled")
	case *Opaque:
		if m.Name == "comment" {
			return true // a comment the parser could not read (unquoted words) still never filters
		}
		return x.assume(b, c, r, "-m "+m.Name+" "+strings.Join(m.Args, " "), "match not modelled")
	default:
		return x.assume(b, c, r, "-m "+m.Module(), "match not modelled")
	}
}

func (x *run) conntrack(b *Branch, c *evChain, r *evRule, m *Conntrack) bool {
	p := &b.Packet
	if m.StateSet && (p.state()&m.State != 0) == m.StateInvert {
		return false
	}
	if m.ProtoSet {
		pn, _ := ProtoNumber(p.Proto)
		if (pn == m.Proto) == m.ProtoInvert {
			return false
		}
	}
	// For the first packet the original tuple is the packet as it entered conntrack; the
	// model approximates it with the current addresses before translation is reflected.
	if m.OrigSrc.Set || m.OrigDst.Set || m.ReplSrc.Set || m.ReplDst.Set || m.OrigSrcPort.Set ||
		m.OrigDstPort.Set || m.ReplSrcPort.Set || m.ReplDstPort.Set || m.StatusSet || m.ExpireSet || m.Dir != "" {
		return x.assume(b, c, r, "-m conntrack (tuple/status/expire/dir)", "conntrack tuples are not modelled")
	}
	return true
}

func (x *run) recent(b *Branch, c *evChain, r *evRule, m *Recent) bool {
	p := &b.Packet
	addr := p.Src
	if m.Dest {
		addr = p.Dst
	}
	name := m.Name
	if name == "" {
		name = "DEFAULT"
	}
	e, found := b.Recent.lookup(name, addr)
	hit := found
	if hit && m.Seconds > 0 && e.SecondsAgo > m.Seconds {
		hit = false
	}
	if hit && m.Hitcount > 0 && e.Hits < m.Hitcount {
		hit = false
	}
	if m.RTTL {
		x.assume(b, c, r, "--rttl", "TTL not modelled")
	}
	switch m.Command {
	case RecentSet:
		x.recentWrite(b, name, addr, true)
		if !x.env.NoSteps {
			b.Events = append(b.Events, Event{Kind: EventRecentSet, Hook: x.hook, Table: x.table, Chain: c.name, Num: r.num, Detail: "--set " + name + " " + addr.String()})
		}
		return !m.Invert
	case RecentUpdate:
		if found {
			x.recentWrite(b, name, addr, true)
		}
		return hit != m.Invert
	case RecentRemove:
		if found {
			x.recentWrite(b, name, addr, false)
		}
		return found != m.Invert
	default:
		return hit != m.Invert
	}
}

func (x *run) recentWrite(b *Branch, name string, addr netip.Addr, add bool) {
	if !b.recentOwned {
		b.Recent = b.Recent.clone()
		b.recentOwned = true
	}
	list := b.Recent[name]
	for i, e := range list {
		if e.Addr == addr {
			if add {
				list[i].SecondsAgo = 0
				list[i].Hits++
			} else {
				list = slices.Delete(list, i, i+1)
			}
			b.Recent[name] = list
			return
		}
	}
	if add {
		b.Recent[name] = append(list, RecentEntry{Addr: addr, Hits: 1})
	}
}

// Probability rounds p to the 11 decimals iptables-save prints probabilities with.
func Probability(p float64) float64 { return math.Round(p*1e11) / 1e11 }

// connmark applies CONNMARK as xt_connmark's connmark_tg_shift does (shift 0).
func connmark(m *ConnmarkTarget, mark, ctmark uint32) (uint32, uint32) {
	switch m.Mode {
	case ConnmarkSave:
		ctmark = (ctmark &^ m.CtMask) ^ (mark & m.NfMask)
	case ConnmarkRestore:
		mark = (mark &^ m.NfMask) ^ (ctmark & m.CtMask)
	default:
		ctmark = (ctmark &^ m.Mask) ^ m.Value
	}
	return mark, ctmark
}

// compileTarget resolves r's target: a verdict, a chain (which must exist), or an extension.
func compileTarget(t *evTable, er *evRule) error {
	switch tg := er.target.(type) {
	case nil:
		er.kind = tNone
	case *Verdict:
		switch tg.Kind {
		case VerdictAccept:
			er.kind = tAccept
		case VerdictDrop:
			er.kind = tDrop
		case VerdictReturn:
			er.kind = tReturn
		case VerdictQueue:
			er.kind = tQueue
		default:
			return fmt.Errorf("unknown verdict %q", tg.Kind)
		}
	case *Jump:
		c := t.chains[tg.Chain]
		if c == nil {
			return fmt.Errorf("jump to %s: %w", tg.Chain, ErrNoChain)
		}
		if c.builtin {
			return fmt.Errorf("jump to builtin chain %s is not allowed", tg.Chain)
		}
		er.chain = c
		er.kind = tJump
		if tg.Goto {
			er.kind = tGoto
		}
	case *Reject:
		er.kind = tReject
	case *DNAT:
		er.kind = tDNAT
		er.natAddr, er.natPort = tg.To.MinAddr, tg.To.MinPort
		er.natRange = (tg.To.MaxAddr.IsValid() && tg.To.MaxAddr != tg.To.MinAddr) || (tg.To.MaxPort != 0 && tg.To.MaxPort != tg.To.MinPort)
	case *SNAT:
		er.kind = tSNAT
		er.natAddr, er.natPort = tg.To.MinAddr, tg.To.MinPort
		er.natRange = (tg.To.MaxAddr.IsValid() && tg.To.MaxAddr != tg.To.MinAddr) || (tg.To.MaxPort != 0 && tg.To.MaxPort != tg.To.MinPort)
	case *Masquerade:
		er.kind = tMasquerade
	case *Redirect:
		er.kind = tRedirect
		er.natPort = tg.MinPort
		er.natRange = tg.MaxPort != 0 && tg.MaxPort != tg.MinPort
	case *MarkTarget:
		er.kind = tMark
	case *ConnmarkTarget:
		er.kind = tConnmark
	case *Log, *NFLog, *Trace:
		er.kind = tLog
	case *Notrack:
		er.kind = tNotrack
	case *CT:
		er.kind = tCT
		if tg.Notrack {
			er.kind = tNotrack
		}
	case *OpaqueTarget:
		switch tg.Name {
		case "NFQUEUE":
			er.kind = tQueue
		case "ULOG":
			er.kind = tLog
		default:
			er.kind = tOther
		}
	default:
		er.kind = tOther
	}
	return nil
}
