package nftables

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Packet is the part of a packet and its conntrack entry that rules look at.
type Packet struct {
	Src, Dst     netip.Addr
	Proto        string // "tcp", "udp", "sctp", "icmp", "icmpv6"
	SPort, DPort uint16
	IIF, OIF     string
	Mark         uint32
	// CtState is the conntrack state of the packet ("new" for the first packet).
	CtState string
	// CtStatus holds conntrack status bits that are set ("dnat", "snat").
	CtStatus []string
}

// Env is the node context of an evaluation.
type Env struct {
	// IsLocal reports whether an address is local to the node (fib ... type local).
	IsLocal func(netip.Addr) bool
	// Dynamic holds members of dynamic sets (session affinity) by set name; nil means empty.
	Dynamic map[string]map[string]bool
}

// Step is one rule or chain policy that took part in a decision.
type Step struct {
	Hook    Hook
	Table   string
	Family  Family
	Chain   string
	Rule    int // 1-based index in the chain; 0 for the chain's policy
	Text    string
	Verdict string // what the step did: "jump X", "dnat to ...", "accept (policy)"...
}

// HookResult is what one hook did to a packet.
type HookResult struct {
	Verdict    VerdictKind // accept, drop or reject
	DNAT       string      // the dnat target, if one fired
	SNAT       string
	Masquerade bool
	Path       []Step
}

// Chooser resolves random choices (numgen random) during one evaluation; it returns an
// index in [0, n).
type Chooser interface {
	Choose(n int) int
}

type frame struct {
	chain *Chain
	next  int
}

// errLoop reports a chain cycle, which the kernel refuses to load.
type errLoop struct{ chain string }

func (e errLoop) Error() string { return fmt.Sprintf("chain loop through %q", e.chain) }

// baseChain is a base chain with its table.
type baseChain struct {
	table *Table
	chain *Chain
}

// BaseChains returns the base chains attached to hook h in the family of the packet's
// address, ordered as the kernel runs them (priority, then table order).
func (rs *Ruleset) BaseChains(h Hook, is6 bool) []baseChain {
	var out []baseChain
	for _, t := range rs.Tables {
		switch t.Family {
		case FamilyInet:
		case FamilyIP:
			if is6 {
				continue
			}
		case FamilyIP6:
			if !is6 {
				continue
			}
		default:
			continue
		}
		for _, c := range t.baseChains(h) {
			out = append(out, baseChain{t, c})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].chain.Priority < out[j].chain.Priority })
	return out
}

// EvalHook runs a packet through every base chain at hook h. NAT chains run only for a
// packet in conntrack state "new", as in the kernel. pkt is modified (DNAT rewrites the
// destination, marks are set).
func (rs *Ruleset) EvalHook(h Hook, pkt *Packet, env *Env, ch Chooser) (HookResult, error) {
	res := HookResult{Verdict: VerdictAccept}
	for _, bc := range rs.BaseChains(h, pkt.Dst.Is6() && !pkt.Dst.Is4In6()) {
		if bc.chain.Type == TypeNAT && pkt.CtState != "new" {
			continue
		}
		v, err := rs.evalBase(h, bc, pkt, env, ch, &res)
		if err != nil {
			return res, err
		}
		if v == VerdictDrop || v == VerdictReject {
			res.Verdict = v
			return res, nil
		}
	}
	return res, nil
}

// maxDepth is the kernel's jump stack limit (NFT_JUMP_STACK_SIZE); maxSteps bounds a
// goto cycle, which the kernel refuses to load (ELOOP) and the model reports instead.
const (
	maxDepth = 16
	maxSteps = 1 << 20
)

func (rs *Ruleset) evalBase(h Hook, bc baseChain, pkt *Packet, env *Env, ch Chooser, res *HookResult) (VerdictKind, error) {
	t := bc.table
	stack := []frame{{chain: bc.chain}}
	steps := 0
	for len(stack) > 0 {
		steps++
		if len(stack) > maxDepth || steps > maxSteps {
			return "", errLoop{stack[len(stack)-1].chain.Name}
		}
		top := &stack[len(stack)-1]
		if top.next >= len(top.chain.Rules) {
			// End of chain: a base chain applies its policy, a regular chain returns.
			if len(stack) == 1 {
				pol := VerdictAccept
				if bc.chain.Policy == "drop" {
					pol = VerdictDrop
				}
				res.Path = append(res.Path, Step{Hook: h, Table: t.Name, Family: t.Family, Chain: bc.chain.Name, Verdict: string(pol) + " (policy)"})
				return pol, nil
			}
			stack = stack[:len(stack)-1]
			continue
		}
		idx := top.next
		rule := top.chain.Rules[idx]
		top.next++
		if rule.Stmts == nil && rule.Err == nil {
			rule.Stmts, rule.Err = ParseRule(rule.Text)
		}
		if rule.Err != nil {
			return "", fmt.Errorf("table %s %s chain %s rule %d: %w", t.Family, t.Name, top.chain.Name, idx+1, rule.Err)
		}
		out, err := rs.evalRule(t, rule, pkt, env, ch, res)
		if err != nil {
			return "", fmt.Errorf("table %s %s chain %s rule %d: %w", t.Family, t.Name, top.chain.Name, idx+1, err)
		}
		if !out.matched {
			continue
		}
		step := Step{Hook: h, Table: t.Name, Family: t.Family, Chain: top.chain.Name, Rule: idx + 1, Text: rule.Text}
		if out.verdict != nil {
			step.Verdict = out.verdict.String()
		}
		if out.note != "" {
			if step.Verdict != "" {
				step.Verdict = out.note + "; " + step.Verdict
			} else {
				step.Verdict = out.note
			}
		}
		res.Path = append(res.Path, step)
		if out.verdict == nil {
			continue
		}
		v := *out.verdict
		switch v.Kind {
		case VerdictAccept, VerdictDrop, VerdictReject:
			return v.Kind, nil
		case VerdictContinue:
		case VerdictReturn:
			if len(stack) == 1 {
				pol := VerdictAccept
				if bc.chain.Policy == "drop" {
					pol = VerdictDrop
				}
				return pol, nil
			}
			stack = stack[:len(stack)-1]
		case VerdictJump, VerdictGoto:
			target := t.Chain(v.Chain)
			if target == nil {
				return "", fmt.Errorf("table %s %s: %s to missing chain %q", t.Family, t.Name, v.Kind, v.Chain)
			}
			if v.Kind == VerdictGoto && len(stack) > 1 {
				stack[len(stack)-1] = frame{chain: target}
			} else if v.Kind == VerdictGoto {
				// goto from a base chain: the target's end applies the base policy.
				stack = append(stack, frame{chain: target})
				stack[0].next = len(stack[0].chain.Rules)
			} else {
				stack = append(stack, frame{chain: target})
			}
		}
	}
	return VerdictAccept, nil
}

type ruleOutcome struct {
	matched bool
	verdict *Verdict
	note    string
}

// fieldValue returns the packet's value of f as the words set elements use.
func fieldValue(f Field, pkt *Packet) (string, bool) {
	switch f {
	case "ip saddr", "ip6 saddr":
		return pkt.Src.String(), pkt.Src.IsValid()
	case "ip daddr", "ip6 daddr":
		return pkt.Dst.String(), pkt.Dst.IsValid()
	case "meta l4proto", "l4proto", "ip protocol", "ip6 nexthdr":
		return pkt.Proto, pkt.Proto != ""
	case "th dport":
		return strconv.Itoa(int(pkt.DPort)), pkt.Proto == "tcp" || pkt.Proto == "udp" || pkt.Proto == "sctp"
	case "th sport":
		return strconv.Itoa(int(pkt.SPort)), pkt.Proto == "tcp" || pkt.Proto == "udp" || pkt.Proto == "sctp"
	case "tcp dport", "udp dport", "sctp dport":
		return strconv.Itoa(int(pkt.DPort)), strings.HasPrefix(string(f), pkt.Proto+" ")
	case "tcp sport", "udp sport", "sctp sport":
		return strconv.Itoa(int(pkt.SPort)), strings.HasPrefix(string(f), pkt.Proto+" ")
	case "iifname", "meta iifname", "iif", "meta iif":
		return pkt.IIF, true
	case "oifname", "meta oifname", "oif", "meta oif":
		return pkt.OIF, true
	case "mark", "meta mark":
		return fmt.Sprintf("0x%08x", pkt.Mark), true
	}
	return "", false
}

// wordMatches reports whether a packet value matches one literal word of a rule or set
// element: an address against an address or prefix or range, a port against a number or
// range, a name against a name or `prefix*` wildcard, a mark numerically.
func wordMatches(f Field, val, word string) bool {
	word = strings.Trim(word, `"`)
	switch {
	case strings.HasSuffix(string(f), "addr"):
		a, err := netip.ParseAddr(val)
		if err != nil {
			return false
		}
		if lo, hi, ok := strings.Cut(word, "-"); ok {
			l, e1 := netip.ParseAddr(lo)
			h, e2 := netip.ParseAddr(hi)
			return e1 == nil && e2 == nil && a.Compare(l) >= 0 && a.Compare(h) <= 0
		}
		p, ok := parsePrefix(word)
		return ok && p.Contains(a)
	case strings.HasSuffix(string(f), "port"):
		v, _ := strconv.Atoi(val)
		if lo, hi, ok := strings.Cut(word, "-"); ok {
			l, e1 := strconv.Atoi(lo)
			h, e2 := strconv.Atoi(hi)
			return e1 == nil && e2 == nil && v >= l && v <= h
		}
		n, err := strconv.Atoi(word)
		return err == nil && n == v
	case strings.HasSuffix(string(f), "mark"):
		a, e1 := strconv.ParseUint(val, 0, 32)
		b, e2 := strconv.ParseUint(word, 0, 32)
		return e1 == nil && e2 == nil && a == b
	case strings.HasSuffix(string(f), "ifname") || strings.HasSuffix(string(f), "iif") || strings.HasSuffix(string(f), "oif"):
		if strings.HasSuffix(word, "*") {
			return strings.HasPrefix(val, strings.TrimSuffix(word, "*"))
		}
		return val == word
	default:
		return val == word
	}
}

// elementMatches matches a concatenated key against an element key.
func elementMatches(key []Field, vals []string, elem []string) bool {
	if len(elem) != len(vals) {
		return false
	}
	for i := range vals {
		if !wordMatches(key[i], vals[i], elem[i]) {
			return false
		}
	}
	return true
}

// lookup finds the element of set s matching the packet's key values.
func (s *Set) lookup(key []Field, vals []string) *Element {
	if idx := s.index(); idx != nil {
		if e, ok := idx[strings.Join(vals, " . ")]; ok {
			return e
		}
		if !s.hasInterval() {
			return nil
		}
	}
	for _, e := range s.Elements {
		if elementMatches(key, vals, e.Key) {
			return e
		}
	}
	return nil
}

func (s *Set) hasInterval() bool {
	for _, f := range s.Flags {
		if f == "interval" {
			return true
		}
	}
	return false
}

// index builds (once) an exact-key index; constant-time dispatch through verdict maps.
func (s *Set) index() map[string]*Element {
	if s.exact != nil && s.exactN == len(s.Elements) {
		return s.exact
	}
	s.exact = make(map[string]*Element, len(s.Elements))
	for _, e := range s.Elements {
		k := e.KeyString()
		if _, dup := s.exact[k]; !dup {
			s.exact[k] = e
		}
	}
	s.exactN = len(s.Elements)
	return s.exact
}

func (rs *Ruleset) evalRule(t *Table, r *Rule, pkt *Packet, env *Env, ch Chooser, res *HookResult) (ruleOutcome, error) {
	var notes []string
	for _, st := range r.Stmts {
		switch s := st.(type) {
		case Match:
			vals := make([]string, len(s.Key))
			for i, f := range s.Key {
				v, ok := fieldValue(f, pkt)
				if !ok {
					return ruleOutcome{}, nil
				}
				vals[i] = v
			}
			var hit bool
			switch {
			case s.Mask != "":
				mask, err := parseMark(s.Mask)
				if err != nil {
					return ruleOutcome{}, err
				}
				want, err := parseMark(s.Val.String())
				if err != nil {
					return ruleOutcome{}, err
				}
				hit = pkt.Mark&mask == want
			case s.Val.Set != "":
				if dyn, ok := env.Dynamic[s.Val.Set]; ok || isDynamic(t, s.Val.Set) {
					hit = dyn[strings.Join(vals, " . ")]
				} else {
					set := t.Set(s.Val.Set)
					if set == nil {
						return ruleOutcome{}, fmt.Errorf("lookup in missing set %q", s.Val.Set)
					}
					hit = set.lookup(s.Key, vals) != nil
				}
			default:
				if len(s.Key) != 1 {
					return ruleOutcome{}, fmt.Errorf("%w: concatenation compared with a literal", ErrSyntax)
				}
				for _, w := range s.Val.Words {
					if wordMatches(s.Key[0], vals[0], w) {
						hit = true
						break
					}
				}
			}
			if s.Op == OpNe {
				hit = !hit
			}
			if !hit {
				return ruleOutcome{}, nil
			}
		case Fib:
			var a netip.Addr
			if s.Dir == "saddr" {
				a = pkt.Src
			} else {
				a = pkt.Dst
			}
			local := env.IsLocal != nil && env.IsLocal(a)
			hit := false
			for _, ty := range s.Types {
				if ty == "local" && local || ty == "unicast" && !local {
					hit = true
				}
			}
			if s.Op == OpNe {
				hit = !hit
			}
			if !hit {
				return ruleOutcome{}, nil
			}
		case Ct:
			var have []string
			switch s.Key {
			case "state":
				have = []string{pkt.CtState}
			case "status":
				have = pkt.CtStatus
			default:
				return ruleOutcome{}, fmt.Errorf("ct %s is not modelled", s.Key)
			}
			hit := false
			for _, w := range s.Values {
				for _, h := range have {
					if w == h {
						hit = true
					}
				}
			}
			if s.Op == OpNe {
				hit = !hit
			}
			if !hit {
				return ruleOutcome{}, nil
			}
		case VMap:
			vals := make([]string, len(s.Key))
			for i, f := range s.Key {
				v, ok := fieldValue(f, pkt)
				if !ok {
					return ruleOutcome{}, nil
				}
				vals[i] = v
			}
			var v *Verdict
			if s.Map != "" {
				m := t.Set(s.Map)
				if m == nil {
					return ruleOutcome{}, fmt.Errorf("vmap lookup in missing map %q", s.Map)
				}
				e := m.lookup(s.Key, vals)
				if e == nil {
					return ruleOutcome{}, nil
				}
				vt, err := parseVerdictValue(e.Value)
				if err != nil {
					return ruleOutcome{}, err
				}
				v = &vt
				notes = append(notes, "@"+s.Map+" ["+e.KeyString()+"]")
			} else {
				for _, e := range s.Anon {
					if elementMatches(s.Key, vals, strings.Split(e.Key, " . ")) {
						vt := e.Verdict
						v = &vt
						break
					}
				}
				if v == nil {
					return ruleOutcome{}, nil
				}
			}
			return ruleOutcome{matched: true, verdict: v, note: strings.Join(notes, "; ")}, nil
		case Numgen:
			n := s.Offset
			if ch != nil {
				n += ch.Choose(s.Mod)
			}
			for _, e := range s.Entries {
				if e.Key == strconv.Itoa(n) {
					vt := e.Verdict
					notes = append(notes, fmt.Sprintf("numgen picked %d of %d", n-s.Offset, s.Mod))
					return ruleOutcome{matched: true, verdict: &vt, note: strings.Join(notes, "; ")}, nil
				}
			}
			return ruleOutcome{}, nil
		case MarkSet:
			switch s.Op {
			case "or":
				pkt.Mark |= s.Value
			case "xor":
				pkt.Mark ^= s.Value
			case "and":
				pkt.Mark &= s.Value
			default:
				pkt.Mark = s.Value
			}
		case SetUpdate:
			vals := make([]string, len(s.Key))
			for i, f := range s.Key {
				vals[i], _ = fieldValue(f, pkt)
			}
			if env.Dynamic == nil {
				env.Dynamic = map[string]map[string]bool{}
			}
			if env.Dynamic[s.Set] == nil {
				env.Dynamic[s.Set] = map[string]bool{}
			}
			env.Dynamic[s.Set][strings.Join(vals, " . ")] = true
			notes = append(notes, "affinity recorded in @"+s.Set)
		case NAT:
			switch s.Kind {
			case "dnat":
				res.DNAT = s.To
				applyDNAT(pkt, s.To)
				pkt.CtStatus = append(pkt.CtStatus, "dnat")
			case "snat":
				res.SNAT = s.To
				pkt.CtStatus = append(pkt.CtStatus, "snat")
			case "masquerade":
				res.Masquerade = true
				pkt.CtStatus = append(pkt.CtStatus, "snat")
			case "redirect":
				res.DNAT = s.To
			}
			v := Verdict{Kind: VerdictAccept}
			return ruleOutcome{matched: true, verdict: &v, note: s.String()}, nil
		case Verdict:
			vt := s
			return ruleOutcome{matched: true, verdict: &vt, note: strings.Join(notes, "; ")}, nil
		case Other:
			// counter, log, limit, notrack: no effect on the verdict.
		}
	}
	return ruleOutcome{matched: true, note: strings.Join(notes, "; ")}, nil
}

func isDynamic(t *Table, name string) bool {
	s := t.Set(name)
	if s == nil {
		return false
	}
	for _, f := range s.Flags {
		if f == "dynamic" {
			return true
		}
	}
	return false
}

func parseVerdictValue(words []string) (Verdict, error) {
	p := &ruleParser{}
	for _, w := range words {
		p.toks = append(p.toks, strings.Fields(w)...)
	}
	return p.parseVerdictWords()
}

// applyDNAT rewrites the packet's destination from a dnat target ("10.0.0.1:80",
// "[fd00::1]:80", "10.0.0.1").
func applyDNAT(pkt *Packet, to string) {
	if ap, err := netip.ParseAddrPort(to); err == nil {
		pkt.Dst = ap.Addr()
		pkt.DPort = ap.Port()
		return
	}
	if a, err := netip.ParseAddr(strings.Trim(to, "[]")); err == nil {
		pkt.Dst = a
	}
}
