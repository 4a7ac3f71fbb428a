package nftables

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Statement is one parsed statement of a rule: a match (Expr compared with a value, a set
// lookup, a verdict-map dispatch) or an action (verdict, NAT, mark, set update, counter).
// The set of implementations is closed.
type Statement interface {
	isStatement()
	String() string
}

// Field names a packet or metadata field, spelled as nft spells it ("ip daddr",
// "meta l4proto", "th dport", "iifname", "mark").
type Field string

// Op is a comparison operator.
type Op string

// Operators.
const (
	OpEq Op = "=="
	OpNe Op = "!="
	OpLt Op = "<"
	OpGt Op = ">"
	OpLe Op = "<="
	OpGe Op = ">="
)

// Value is the right-hand side of a comparison: literal words, an anonymous set
// (`{ a, b }`), or a named set (`@name`).
type Value struct {
	Words []string // one literal, or the members of an anonymous set
	Anon  bool     // written as { ... }
	Set   string   // named set, without '@'
}

func (v Value) String() string {
	switch {
	case v.Set != "":
		return "@" + v.Set
	case v.Anon:
		return "{ " + strings.Join(v.Words, ", ") + " }"
	default:
		return strings.Join(v.Words, " ")
	}
}

// Match compares a (possibly concatenated) key with a value: `ip daddr 10.0.0.1`,
// `ip saddr != 10.0.0.0/8`, `ip daddr @cluster-ips`, `ip daddr . meta l4proto . th dport @s`.
type Match struct {
	Key  []Field
	Mask string // for `mark and 0x4000 == 0`
	Op   Op
	Val  Value
}

// VMap dispatches on a key through a verdict map: `ip daddr . meta l4proto . th dport vmap @service-ips`.
type VMap struct {
	Key  []Field
	Map  string      // named map, or empty
	Anon []VMapEntry // anonymous map
}

// VMapEntry is one `key : verdict` of an anonymous verdict map.
type VMapEntry struct {
	Key     string
	Verdict Verdict
}

// Numgen is `numgen random mod N [offset O] vmap { 0 : goto a , 1 : goto b }`: the kernel
// draws a uniformly random number in [offset, offset+N) per packet.
type Numgen struct {
	Mode    string // "random" or "inc"
	Mod     int
	Offset  int
	Entries []VMapEntry
}

// Fib is `fib saddr|daddr [. iif] type [!=] local|...`.
type Fib struct {
	Dir   string // "saddr" or "daddr"
	Op    Op
	Types []string
}

// Ct is `ct state|status [!=] v1,v2`.
type Ct struct {
	Key    string // "state", "status", "mark", ...
	Op     Op
	Values []string
}

// VerdictKind is an nftables verdict.
type VerdictKind string

// Verdicts.
const (
	VerdictAccept   VerdictKind = "accept"
	VerdictDrop     VerdictKind = "drop"
	VerdictReject   VerdictKind = "reject"
	VerdictReturn   VerdictKind = "return"
	VerdictJump     VerdictKind = "jump"
	VerdictGoto     VerdictKind = "goto"
	VerdictContinue VerdictKind = "continue"
)

// Verdict ends or redirects rule evaluation.
type Verdict struct {
	Kind  VerdictKind
	Chain string // for jump and goto
	With  string // for reject: "icmp type port-unreachable", "tcp reset", ...
}

// NAT is dnat, snat, masquerade or redirect.
type NAT struct {
	Kind   string // "dnat", "snat", "masquerade", "redirect"
	Family string // "ip" / "ip6" in `dnat ip to ...`, usually empty
	To     string // address, address:port, [v6]:port, or :port for redirect
	Flags  []string
}

// MarkSet is `[meta] mark set mark or|xor|and V` or `[meta] mark set V`.
type MarkSet struct {
	Op    string // "or", "xor", "and", "set"
	Value uint32
}

// SetUpdate is `update|add @set { key }` (used for session affinity).
type SetUpdate struct {
	Verb string
	Set  string
	Key  []Field
}

// Other is a statement that does not change the verdict and that the evaluator only
// records: counter, log, limit, notrack, meta nftrace set, ...
type Other struct {
	Words []string
}

func (Match) isStatement()     {}
func (VMap) isStatement()      {}
func (Numgen) isStatement()    {}
func (Fib) isStatement()       {}
func (Ct) isStatement()        {}
func (Verdict) isStatement()   {}
func (NAT) isStatement()       {}
func (MarkSet) isStatement()   {}
func (SetUpdate) isStatement() {}
func (Other) isStatement()     {}

func joinKey(k []Field) string {
	s := make([]string, len(k))
	for i, f := range k {
		s[i] = string(f)
	}
	return strings.Join(s, " . ")
}

func (m Match) String() string {
	var b strings.Builder
	b.WriteString(joinKey(m.Key))
	if m.Mask != "" {
		b.WriteString(" and " + m.Mask)
	}
	if m.Op != "" && m.Op != OpEq || m.Mask != "" {
		op := m.Op
		if op == "" {
			op = OpEq
		}
		b.WriteString(" " + string(op))
	}
	b.WriteString(" " + m.Val.String())
	return b.String()
}

func (v VMap) String() string {
	if v.Map != "" {
		return joinKey(v.Key) + " vmap @" + v.Map
	}
	return joinKey(v.Key) + " vmap " + entriesString(v.Anon)
}

func entriesString(es []VMapEntry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Key + " : " + e.Verdict.String()
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func (n Numgen) String() string {
	s := fmt.Sprintf("numgen %s mod %d", n.Mode, n.Mod)
	if n.Offset != 0 {
		s += fmt.Sprintf(" offset %d", n.Offset)
	}
	return s + " vmap " + entriesString(n.Entries)
}

func (f Fib) String() string {
	s := "fib " + f.Dir + " type "
	if f.Op == OpNe {
		s += "!= "
	}
	if len(f.Types) == 1 {
		return s + f.Types[0]
	}
	return s + "{ " + strings.Join(f.Types, ", ") + " }"
}

func (c Ct) String() string {
	s := "ct " + c.Key + " "
	if c.Op == OpNe {
		s += "!= "
	}
	return s + strings.Join(c.Values, ",")
}

func (v Verdict) String() string {
	switch v.Kind {
	case VerdictJump, VerdictGoto:
		return string(v.Kind) + " " + v.Chain
	case VerdictReject:
		if v.With != "" {
			return "reject with " + v.With
		}
	}
	return string(v.Kind)
}

func (n NAT) String() string {
	s := n.Kind
	if n.Family != "" {
		s += " " + n.Family
	}
	if n.To != "" {
		s += " to " + n.To
	}
	for _, f := range n.Flags {
		s += " " + f
	}
	return s
}

func (m MarkSet) String() string {
	if m.Op == "set" {
		return fmt.Sprintf("mark set 0x%08x", m.Value)
	}
	return fmt.Sprintf("mark set mark %s 0x%08x", m.Op, m.Value)
}

func (u SetUpdate) String() string {
	return u.Verb + " @" + u.Set + " { " + joinKey(u.Key) + " }"
}

func (o Other) String() string { return strings.Join(o.Words, " ") }

// ErrSyntax is wrapped by every rule parse error.
var ErrSyntax = errors.New("nft syntax")

// tokenize splits nft rule text into words: whitespace separates, `{ } ,` are always their
// own tokens, and a double-quoted string is one token (quotes kept).
func tokenize(s string) ([]string, error) {
	var toks []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '{' || c == '}' || c == ',':
			toks = append(toks, string(c))
			i++
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string", ErrSyntax)
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n{},\"", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

type ruleParser struct {
	toks []string
	pos  int
}

func (p *ruleParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *ruleParser) peekAt(n int) string {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return ""
}

func (p *ruleParser) next() string {
	t := p.peek()
	if p.pos < len(p.toks) {
		p.pos++
	}
	return t
}

func (p *ruleParser) expect(w string) error {
	if t := p.next(); t != w {
		return fmt.Errorf("%w: expected %q, found %q", ErrSyntax, w, t)
	}
	return nil
}

// fieldWords are the selectors that open a match, with how many words the field takes.
var fieldWords = map[string][]string{
	"ip":     {"saddr", "daddr", "protocol", "length", "ttl", "dscp"},
	"ip6":    {"saddr", "daddr", "nexthdr", "length", "hoplimit"},
	"th":     {"sport", "dport"},
	"tcp":    {"sport", "dport", "flags"},
	"udp":    {"sport", "dport"},
	"sctp":   {"sport", "dport"},
	"meta":   {"l4proto", "mark", "iifname", "oifname", "iif", "oif", "nfproto", "protocol", "skuid", "skgid", "pkttype"},
	"icmp":   {"type", "code"},
	"icmpv6": {"type", "code"},
	"ether":  {"saddr", "daddr", "type"},
}

// singleFields are fields written as one word.
var singleFields = map[string]bool{"iifname": true, "oifname": true, "iif": true, "oif": true, "mark": true, "l4proto": true}

// parseField reads one field at the current position, or returns "" without consuming.
func (p *ruleParser) parseField() Field {
	w := p.peek()
	if subs, ok := fieldWords[w]; ok {
		nx := p.peekAt(1)
		for _, s := range subs {
			if nx == s {
				p.pos += 2
				return Field(w + " " + s)
			}
		}
		return ""
	}
	if singleFields[w] {
		// "mark set ..." is an action, not a match.
		if w == "mark" && p.peekAt(1) == "set" {
			return ""
		}
		p.pos++
		return Field(w)
	}
	return ""
}

func isOp(w string) bool {
	switch Op(w) {
	case OpEq, OpNe, OpLt, OpGt, OpLe, OpGe:
		return true
	}
	return false
}

// parseValue reads a literal, `{ a, b }` or `@set`.
func (p *ruleParser) parseValue() (Value, error) {
	w := p.peek()
	switch {
	case w == "":
		return Value{}, fmt.Errorf("%w: missing value", ErrSyntax)
	case w == "{":
		p.next()
		var v Value
		v.Anon = true
		var cur []string
		for {
			t := p.next()
			switch t {
			case "":
				return Value{}, fmt.Errorf("%w: unterminated set", ErrSyntax)
			case "}":
				if len(cur) > 0 {
					v.Words = append(v.Words, strings.Join(cur, " "))
				}
				return v, nil
			case ",":
				if len(cur) > 0 {
					v.Words = append(v.Words, strings.Join(cur, " "))
				}
				cur = nil
			default:
				cur = append(cur, t)
			}
		}
	case strings.HasPrefix(w, "@"):
		p.next()
		return Value{Set: w[1:]}, nil
	default:
		p.next()
		return Value{Words: []string{w}}, nil
	}
}

func (p *ruleParser) parseVerdictWords() (Verdict, error) {
	w := p.next()
	switch VerdictKind(w) {
	case VerdictAccept, VerdictDrop, VerdictReturn, VerdictContinue:
		return Verdict{Kind: VerdictKind(w)}, nil
	case VerdictReject:
		v := Verdict{Kind: VerdictReject}
		if p.peek() == "with" {
			p.next()
			var with []string
			for p.peek() != "" && p.peek() != "}" && p.peek() != "," && p.peek() != "comment" {
				with = append(with, p.next())
			}
			v.With = strings.Join(with, " ")
		}
		return v, nil
	case VerdictJump, VerdictGoto:
		c := p.next()
		if c == "" {
			return Verdict{}, fmt.Errorf("%w: %s without a chain", ErrSyntax, w)
		}
		return Verdict{Kind: VerdictKind(w), Chain: c}, nil
	}
	return Verdict{}, fmt.Errorf("%w: expected a verdict, found %q", ErrSyntax, w)
}

func (p *ruleParser) parseVMapEntries() ([]VMapEntry, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var es []VMapEntry
	for {
		if p.peek() == "}" {
			p.next()
			return es, nil
		}
		var key []string
		for p.peek() != ":" {
			if p.peek() == "" {
				return nil, fmt.Errorf("%w: unterminated map", ErrSyntax)
			}
			key = append(key, p.next())
		}
		p.next() // ":"
		v, err := p.parseVerdictWords()
		if err != nil {
			return nil, err
		}
		es = append(es, VMapEntry{Key: strings.Join(key, " "), Verdict: v})
		if p.peek() == "," {
			p.next()
		}
	}
}

func parseMark(w string) (uint32, error) {
	v, err := strconv.ParseUint(w, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: bad mark %q", ErrSyntax, w)
	}
	return uint32(v), nil
}

// ParseRule parses nft rule text (as knftables writes it or `nft list ruleset` prints it,
// with or without a trailing `comment "..."`) into statements.
func ParseRule(text string) ([]Statement, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, err
	}
	p := &ruleParser{toks: toks}
	var out []Statement
	for p.peek() != "" {
		st, err := p.parseStatement()
		if err != nil {
			return out, err
		}
		if st != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func (p *ruleParser) parseStatement() (Statement, error) {
	w := p.peek()
	switch w {
	case "comment":
		p.next()
		p.next() // the quoted string
		return nil, nil
	case "accept", "drop", "reject", "return", "jump", "goto", "continue":
		return p.parseVerdictWords()
	case "counter":
		o := Other{Words: []string{p.next()}}
		for p.peek() == "packets" || p.peek() == "bytes" {
			o.Words = append(o.Words, p.next(), p.next())
		}
		return o, nil
	case "log":
		o := Other{Words: []string{p.next()}}
		for p.peek() == "prefix" || p.peek() == "level" || p.peek() == "group" || p.peek() == "flags" {
			o.Words = append(o.Words, p.next(), p.next())
		}
		return o, nil
	case "notrack":
		return Other{Words: []string{p.next()}}, nil
	case "limit":
		o := Other{Words: []string{p.next()}}
		for p.peek() != "" && !isStatementStart(p.peek()) {
			o.Words = append(o.Words, p.next())
		}
		return o, nil
	case "masquerade", "dnat", "snat", "redirect":
		n := NAT{Kind: p.next()}
		if p.peek() == "ip" || p.peek() == "ip6" {
			n.Family = p.next()
		}
		if p.peek() == "to" {
			p.next()
			n.To = p.next()
		}
		for p.peek() == "fully-random" || p.peek() == "random" || p.peek() == "persistent" {
			n.Flags = append(n.Flags, p.next())
		}
		if n.Kind != "masquerade" && n.To == "" {
			return nil, fmt.Errorf("%w: %s without a target", ErrSyntax, n.Kind)
		}
		return n, nil
	case "update", "add":
		verb := p.next()
		set := p.next()
		if !strings.HasPrefix(set, "@") {
			return nil, fmt.Errorf("%w: %s needs @set, found %q", ErrSyntax, verb, set)
		}
		if err := p.expect("{"); err != nil {
			return nil, err
		}
		var key []Field
		for p.peek() != "}" {
			if p.peek() == "." {
				p.next()
				continue
			}
			f := p.parseField()
			if f == "" {
				return nil, fmt.Errorf("%w: bad key in %s: %q", ErrSyntax, verb, p.peek())
			}
			key = append(key, f)
		}
		p.next()
		return SetUpdate{Verb: verb, Set: set[1:], Key: key}, nil
	case "numgen":
		p.next()
		n := Numgen{Mode: p.next()}
		if err := p.expect("mod"); err != nil {
			return nil, err
		}
		m, err := strconv.Atoi(p.next())
		if err != nil || m <= 0 {
			return nil, fmt.Errorf("%w: bad numgen modulus", ErrSyntax)
		}
		n.Mod = m
		if p.peek() == "offset" {
			p.next()
			if n.Offset, err = strconv.Atoi(p.next()); err != nil {
				return nil, fmt.Errorf("%w: bad numgen offset", ErrSyntax)
			}
		}
		if err := p.expect("vmap"); err != nil {
			return nil, err
		}
		if n.Entries, err = p.parseVMapEntries(); err != nil {
			return nil, err
		}
		return n, nil
	case "fib":
		p.next()
		f := Fib{Dir: p.next(), Op: OpEq}
		for p.peek() == "." {
			p.next()
			p.next() // iif / oif / mark: accepted, not modelled
		}
		if err := p.expect("type"); err != nil {
			return nil, err
		}
		if p.peek() == "!=" {
			p.next()
			f.Op = OpNe
		}
		v, err := p.parseValue()
		if err != nil {
			return nil, err
		}
		f.Types = v.Words
		return f, nil
	case "ct":
		p.next()
		c := Ct{Key: p.next(), Op: OpEq}
		if p.peek() == "!=" || p.peek() == "==" {
			c.Op = Op(p.next())
		}
		v, err := p.parseValue()
		if err != nil {
			return nil, err
		}
		for _, word := range v.Words {
			c.Values = append(c.Values, strings.Split(word, ",")...)
		}
		// `nft list` writes "established,related": the tokenizer splits the commas.
		for !v.Anon && p.peek() == "," {
			p.next()
			c.Values = append(c.Values, p.next())
		}
		return c, nil
	case "mark", "meta":
		if (w == "mark" && p.peekAt(1) == "set") || (w == "meta" && p.peekAt(1) == "mark" && p.peekAt(2) == "set") {
			if w == "meta" {
				p.next()
			}
			p.next()
			p.next() // set
			ms := MarkSet{Op: "set"}
			if p.peek() == "mark" || (p.peek() == "meta" && p.peekAt(1) == "mark") {
				if p.peek() == "meta" {
					p.next()
				}
				p.next()
				switch op := p.next(); op {
				case "|":
					ms.Op = "or"
				case "^":
					ms.Op = "xor"
				case "&":
					ms.Op = "and"
				default:
					ms.Op = op
				}
			}
			v, err := parseMark(p.next())
			if err != nil {
				return nil, err
			}
			ms.Value = v
			return ms, nil
		}
	}
	// A match: field [. field ...] [and MASK] [op] value | vmap ...
	var key []Field
	for {
		f := p.parseField()
		if f == "" {
			break
		}
		key = append(key, f)
		if p.peek() != "." {
			break
		}
		p.next()
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: unknown statement at %q", ErrSyntax, w)
	}
	m := Match{Key: key, Op: OpEq}
	if p.peek() == "and" || p.peek() == "&" {
		p.next()
		m.Mask = p.next()
	}
	if p.peek() == "vmap" {
		p.next()
		if strings.HasPrefix(p.peek(), "@") {
			return VMap{Key: key, Map: p.next()[1:]}, nil
		}
		es, err := p.parseVMapEntries()
		if err != nil {
			return nil, err
		}
		return VMap{Key: key, Anon: es}, nil
	}
	if isOp(p.peek()) {
		m.Op = Op(p.next())
	}
	v, err := p.parseValue()
	if err != nil {
		return nil, err
	}
	m.Val = v
	return m, nil
}

func isStatementStart(w string) bool {
	switch w {
	case "accept", "drop", "reject", "return", "jump", "goto", "counter", "log", "comment", "masquerade", "dnat", "snat":
		return true
	}
	return false
}

// parsePrefix parses an address or prefix literal.
func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}
