package iptablessave

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// argError is an error about one word of a rule, at a 1-based column.
type argError struct {
	col int
	msg string
}

func (e *argError) Error() string { return e.msg }

// note is a tolerated problem inside a rule (becomes a Diagnostic).
type note struct {
	col int
	msg string
}

// slab hands out pointers to zeroed T values carved from chunks, so that the hundreds of
// thousands of small match and target values of a big dump cost one allocation per chunk.
type slab[T any] struct{ buf []T }

func (s *slab[T]) new() *T {
	if len(s.buf) == cap(s.buf) {
		s.buf = make([]T, 0, 512)
	}
	s.buf = s.buf[:len(s.buf)+1]
	return &s.buf[len(s.buf)-1]
}

// slabs are the chunked allocators of the common match and target types.
type slabs struct {
	comments slab[nf.Comment]
	tcps     slab[nf.TCP]
	udps     slab[nf.UDP]
	stats    slab[nf.Statistic]
	marks    slab[nf.Mark]
	jumps    slab[nf.Jump]
	verdicts slab[nf.Verdict]
	dnats    slab[nf.DNAT]
}

// ruleParser turns the words of one rule specification into a netfilter.Rule. It is reused
// across rules to keep allocations down.
type ruleParser struct {
	fam    nf.Family
	strict bool // restore semantics: every problem is an error

	toks  []string
	cols  []int
	ends  []int  // end offset in line of each word's source text
	line  string // the source line (cols and ends index it)
	i     int
	owner []int // per word: index of the match that consumed it, -1 basic, -2 target
	// implicit is the index of the match loaded implicitly by -p, or -1.
	implicit int
	// rule is the rule being parsed (options that depend on -p look at it).
	rule *nf.Rule
	// targetArgs is the index of the first word after the target name.
	targetArgs int
	alloc      slabs
	notes      []note
}

const (
	ownBasic  = -1
	ownTarget = -2
)

// next returns the next word as the value of option opt.
func (p *ruleParser) next(opt string) (string, error) {
	if p.i >= len(p.toks) {
		return "", &argError{col: p.colAt(p.i - 1), msg: fmt.Sprintf("option \"%s\" requires an argument", opt)}
	}
	v := p.toks[p.i]
	p.i++
	return v, nil
}

func (p *ruleParser) colAt(i int) int {
	if i >= 0 && i < len(p.cols) {
		return p.cols[i]
	}
	if len(p.cols) > 0 {
		return p.cols[len(p.cols)-1]
	}
	return 1
}

// parse fills r from words toks (with their columns). In tolerant mode unknown or
// unreadable match/target options are kept as Opaque and reported in p.notes.
func (p *ruleParser) parse(r *nf.Rule, line string, toks []string, cols, ends []int) error {
	p.toks, p.cols, p.ends, p.line, p.i = toks, cols, ends, line, 0
	p.rule = r
	p.implicit = -1
	p.notes = p.notes[:0]
	if cap(p.owner) < len(toks) {
		p.owner = make([]int, len(toks), len(toks)*2)
	}
	p.owner = p.owner[:len(toks)]
	for j := range p.owner {
		p.owner[j] = ownBasic
	}
	invert := false
	for p.i < len(p.toks) {
		start := p.i
		t := p.toks[p.i]
		p.i++
		if t == "!" {
			if invert {
				return &argError{col: p.cols[start], msg: "multiple consecutive ! not allowed"}
			}
			invert = true
			continue
		}
		optStart := start
		if invert {
			optStart = start - 1
		}
		var err error
		switch t {
		case "-s", "--source", "--src", "-d", "--destination", "--dst":
			var v string
			if v, err = p.next(t); err != nil {
				return err
			}
			pfx, perr := parseAddrPrefix(v, p.fam)
			if perr != nil {
				return &argError{col: p.cols[start+1], msg: perr.Error()}
			}
			if invert && pfx.Bits() == 0 && p.strict {
				// iptables-nft turns `! -s 0.0.0.0/0` into a zero-length payload
				// comparison, which the kernel rejects.
				return &argError{col: p.cols[start], msg: "RULE_APPEND failed (Invalid argument): negated zero-length prefix " + v}
			}
			m := nf.AddrMatch{Prefix: pfx, Invert: invert}
			if pfx.Bits() == 0 && !invert {
				m = nf.AddrMatch{} // 0.0.0.0/0 is "any", as iptables stores it
			}
			if t[1] == 's' || t == "--source" || t == "--src" {
				r.Src = m
			} else {
				r.Dst = m
			}
		case "-i", "--in-interface", "-o", "--out-interface":
			var v string
			if v, err = p.next(t); err != nil {
				return err
			}
			if len(v) > 15 {
				return &argError{col: p.cols[start+1], msg: fmt.Sprintf("interface name `%s' must be shorter than IFNAMSIZ (15)", v)}
			}
			m := nf.IfaceMatch{Name: v, Invert: invert}
			if t == "-i" || t == "--in-interface" {
				r.In = m
			} else {
				r.Out = m
			}
		case "-p", "--protocol":
			var v string
			if v, err = p.next(t); err != nil {
				return err
			}
			num, ok := nf.ProtoNumber(strings.ToLower(v))
			if !ok {
				return &argError{col: p.cols[start+1], msg: fmt.Sprintf("unknown protocol \"%s\" specified", v)}
			}
			if num == 0 {
				if invert {
					return &argError{col: p.cols[start], msg: "rule would never match protocol"}
				}
				r.Proto = nf.ProtoMatch{}
			} else {
				r.Proto = nf.ProtoMatch{Name: nf.ProtoName(num), Invert: invert}
			}
		case "-f", "--fragment":
			if p.fam == nf.IPv6 {
				return &argError{col: p.cols[start], msg: "-f is not supported for IPv6"}
			}
			if invert {
				r.Fragment = nf.FragmentNotOnly
			} else {
				r.Fragment = nf.FragmentOnly
			}
		case "-m", "--match":
			if invert {
				return &argError{col: p.cols[start-1], msg: "unexpected ! flag before --match"}
			}
			var v string
			if v, err = p.next(t); err != nil {
				return err
			}
			if p.implicit >= 0 && p.implicit < len(r.Matches) && r.Matches[p.implicit].Module() == v {
				// `-m tcp` after `-p tcp --dport 80` reuses the implicitly loaded match.
				p.implicit = -1
				break
			}
			m := p.newMatch(v)
			if o, ok := m.(*nf.Opaque); ok {
				p.notes = append(p.notes, note{col: p.cols[start+1], msg: fmt.Sprintf("match %q is not modelled, kept verbatim", o.Name)})
			}
			r.Matches = append(r.Matches, m)
		case "-j", "--jump", "-g", "--goto":
			if invert {
				return &argError{col: p.cols[start-1], msg: "cannot have ! before -j"}
			}
			if r.Target != nil {
				return &argError{col: p.cols[start], msg: "multiple -j flags not allowed"}
			}
			var v string
			if v, err = p.next(t); err != nil {
				return err
			}
			if t == "-g" || t == "--goto" {
				r.Target = &nf.Jump{Chain: v, Goto: true}
			} else {
				r.Target = p.newTarget(v)
				if o, ok := r.Target.(*nf.OpaqueTarget); ok {
					p.notes = append(p.notes, note{col: p.cols[start+1], msg: fmt.Sprintf("target %q is not modelled, kept verbatim", o.Name)})
				}
			}
			for j := start; j < p.i; j++ {
				p.owner[j] = ownTarget
			}
			p.targetArgs = p.i
		case "-c", "--set-counters":
			pk, err1 := p.next(t)
			by, err2 := p.next(t)
			if err1 != nil || err2 != nil {
				return &argError{col: p.cols[start], msg: "-c requires packet and byte counter"}
			}
			a, e1 := strconv.ParseUint(pk, 10, 64)
			b, e2 := strconv.ParseUint(by, 10, 64)
			if e1 != nil || e2 != nil {
				return &argError{col: p.cols[start], msg: "-c packet counter not numeric"}
			}
			r.Counters = nf.Counters{Packets: a, Bytes: b}
		default:
			if len(t) < 2 || t[0] != '-' {
				if !p.strict && start > 0 {
					// A stray word (e.g. an unquoted multi-word comment): keep the
					// extension it follows verbatim, as the real tool rejects the line.
					switch k := p.owner[start-1]; {
					case k >= 0:
						if err := p.failMatch(r, k, fmt.Errorf("bad argument `%s'", t), start); err != nil {
							return err
						}
						continue
					case k == ownTarget:
						if err := p.failTarget(r, fmt.Errorf("bad argument `%s'", t), start); err != nil {
							return err
						}
						continue
					}
				}
				return &argError{col: p.cols[start], msg: fmt.Sprintf("bad argument `%s'", t)}
			}
			if err := p.option(r, t, invert, optStart); err != nil {
				return err
			}
		}
		invert = false
	}
	if invert {
		return &argError{col: p.colAt(len(p.toks) - 1), msg: "trailing ! not followed by an option"}
	}
	return p.finish(r)
}

// option dispatches one extension option: to the target first, then to the loaded matches in
// load order, then to an implicitly loaded protocol match, then to an opaque match.
func (p *ruleParser) option(r *nf.Rule, opt string, invert bool, optStart int) error {
	if r.Target != nil {
		if _, opaque := r.Target.(*nf.OpaqueTarget); !opaque {
			ok, err := p.targetOption(r, opt, invert)
			if err != nil {
				return p.failTarget(r, err, optStart)
			}
			if ok {
				p.own(ownTarget, optStart)
				return nil
			}
		}
	}
	// The most recently loaded match that knows the option takes it (a second
	// `-m comment --comment B` gets B, as with the real tool).
	for k := len(r.Matches) - 1; k >= 0; k-- {
		m := r.Matches[k]
		if _, opaque := m.(*nf.Opaque); opaque {
			continue
		}
		ok, err := p.matchOption(m, opt, invert)
		if err != nil {
			return p.failMatch(r, k, err, optStart)
		}
		if ok {
			p.own(k, optStart)
			return nil
		}
	}
	// iptables loads the protocol's match implicitly (`-p tcp --dport 80`).
	if r.Proto.IsSet() && !r.Proto.Invert {
		var m nf.Match
		switch r.Proto.Name {
		case "tcp":
			m = &nf.TCP{}
		case "udp":
			m = &nf.UDP{}
		case "sctp":
			m = &nf.SCTP{}
		case "icmp":
			if p.fam == nf.IPv4 {
				m = &nf.ICMP{Any: true, Type: 0xFF, CodeMax: 0xFF}
			}
		case "ipv6-icmp", "icmpv6":
			if p.fam == nf.IPv6 {
				m = &nf.ICMP{V6: true, CodeMax: 0xFF}
			}
		}
		if m != nil {
			if ok, err := p.matchOption(m, opt, invert); ok || err != nil {
				r.Matches = append(r.Matches, m)
				p.implicit = len(r.Matches) - 1
				if err != nil {
					return p.failMatch(r, len(r.Matches)-1, err, optStart)
				}
				p.own(len(r.Matches)-1, optStart)
				return nil
			}
		}
	}
	if t, ok := r.Target.(*nf.OpaqueTarget); ok {
		t.Args = append(t.Args, p.rawOption(optStart)...)
		return nil
	}
	for k := len(r.Matches) - 1; k >= 0; k-- {
		if o, ok := r.Matches[k].(*nf.Opaque); ok {
			o.Args = append(o.Args, p.rawOption(optStart)...)
			p.own(k, optStart)
			return nil
		}
	}
	return &argError{col: p.cols[optStart], msg: fmt.Sprintf("unknown option \"%s\"", opt)}
}

// own marks the words from optStart to the cursor as consumed by owner k.
func (p *ruleParser) own(k, optStart int) {
	for j := optStart; j < p.i; j++ {
		p.owner[j] = k
	}
}

// raw returns word j as written in the source (quotes and escapes kept).
func (p *ruleParser) raw(j int) string {
	if j < len(p.ends) && p.cols[j] >= 1 && p.ends[j] <= len(p.line) {
		return p.line[p.cols[j]-1 : p.ends[j]]
	}
	return p.toks[j]
}

// rawOption returns the words of the option starting at optStart (its `!`, name and every
// following word up to the next option) as written, advancing the cursor.
func (p *ruleParser) rawOption(optStart int) []string {
	for p.i < len(p.toks) && !isOptionWord(p.toks[p.i]) {
		p.i++
	}
	out := make([]string, 0, p.i-optStart)
	for j := optStart; j < p.i; j++ {
		out = append(out, p.raw(j))
	}
	return out
}

func isOptionWord(w string) bool {
	return w == "!" || (len(w) >= 2 && w[0] == '-' && (w[1] < '0' || w[1] > '9'))
}

// failMatch turns match k into an Opaque match holding its words verbatim (tolerant mode) or
// returns the error (strict mode).
func (p *ruleParser) failMatch(r *nf.Rule, k int, err error, optStart int) error {
	if p.strict {
		return &argError{col: p.cols[optStart], msg: err.Error()}
	}
	name := r.Matches[k].Module()
	var args []string
	for j := 0; j < optStart; j++ {
		if p.owner[j] == k {
			args = append(args, p.raw(j))
		}
	}
	p.i = optStart + 1
	if p.toks[optStart] == "!" {
		p.i++
	}
	args = append(args, p.rawOption(optStart)...)
	r.Matches[k] = &nf.Opaque{Name: name, Args: args}
	p.own(k, optStart)
	p.notes = append(p.notes, note{col: p.cols[optStart], msg: fmt.Sprintf("match %q: %v; kept verbatim", name, err)})
	return nil
}

func (p *ruleParser) failTarget(r *nf.Rule, err error, optStart int) error {
	if p.strict {
		return &argError{col: p.cols[optStart], msg: err.Error()}
	}
	name := r.Target.TargetName()
	var args []string
	for j := p.targetArgs; j < optStart; j++ {
		if p.owner[j] == ownTarget {
			args = append(args, p.raw(j))
		}
	}
	p.i = optStart + 1
	if p.toks[optStart] == "!" {
		p.i++
	}
	args = append(args, p.rawOption(optStart)...)
	r.Target = &nf.OpaqueTarget{Name: name, Args: args}
	p.notes = append(p.notes, note{col: p.cols[optStart], msg: fmt.Sprintf("target %q: %v; kept verbatim", name, err)})
	return nil
}

// newMatch returns an empty typed match for module name (with iptables' defaults), or an
// Opaque one.
func (p *ruleParser) newMatch(name string) nf.Match {
	switch name {
	case "tcp":
		return p.alloc.tcps.new()
	case "udp":
		return p.alloc.udps.new()
	case "sctp":
		return &nf.SCTP{}
	case "multiport":
		return &nf.Multiport{}
	case "comment":
		return p.alloc.comments.new()
	case "mark":
		m := p.alloc.marks.new()
		m.Mask = 0xffffffff
		return m
	case "connmark":
		return &nf.Connmark{Mask: 0xffffffff}
	case "conntrack":
		return &nf.Conntrack{}
	case "state":
		return &nf.State{}
	case "statistic":
		return p.alloc.stats.new()
	case "recent":
		m := &nf.Recent{Name: "DEFAULT"}
		if p.fam == nf.IPv6 {
			m.Mask = netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
		} else {
			m.Mask = netip.AddrFrom4([4]byte{255, 255, 255, 255})
		}
		return m
	case "addrtype":
		return &nf.AddrTypeMatch{}
	case "set":
		return &nf.SetMatch{}
	case "physdev":
		return &nf.Physdev{}
	case "iprange":
		return &nf.IPRange{}
	case "limit":
		return &nf.Limit{Avg: limitScale * 60 * 60 / 3, Burst: 5}
	case "nfacct":
		return &nf.NFAcct{}
	case "owner":
		return &nf.Owner{}
	case "icmp":
		if p.fam == nf.IPv4 {
			return &nf.ICMP{Any: true, Type: 0xFF, CodeMax: 0xFF}
		}
	case "icmp6":
		if p.fam == nf.IPv6 {
			return &nf.ICMP{V6: true, CodeMax: 0xFF}
		}
	case "mac":
		return &nf.MAC{}
	case "length":
		return &nf.Length{}
	}
	return &nf.Opaque{Name: name}
}

// newTarget returns the target for `-j name`: a verdict, a typed extension with iptables'
// defaults, an opaque extension, or a jump to a user chain.
func (p *ruleParser) newTarget(name string) nf.Target {
	switch name {
	case "ACCEPT", "DROP", "RETURN", "QUEUE":
		v := p.alloc.verdicts.new()
		v.Kind = nf.VerdictKind(name)
		return v
	case "REJECT":
		return &nf.Reject{With: defaultReject(p.fam)}
	case "DNAT":
		return p.alloc.dnats.new()
	case "SNAT":
		return &nf.SNAT{}
	case "MASQUERADE":
		return &nf.Masquerade{}
	case "REDIRECT":
		return &nf.Redirect{}
	case "MARK":
		return &nf.MarkTarget{}
	case "CONNMARK":
		return &nf.ConnmarkTarget{}
	case "LOG":
		return &nf.Log{Level: 4}
	case "NFLOG":
		return &nf.NFLog{Threshold: 1}
	case "NOTRACK":
		return &nf.Notrack{}
	case "CT":
		return &nf.CT{}
	case "TRACE":
		return &nf.Trace{}
	}
	if nf.IsTargetExtension(name) {
		return &nf.OpaqueTarget{Name: name}
	}
	j := p.alloc.jumps.new()
	j.Chain = name
	return j
}

// finish checks what iptables checks once the whole rule is read (xtables final_check).
func (p *ruleParser) finish(r *nf.Rule) error {
	for k, m := range r.Matches {
		var err error
		switch m := m.(type) {
		case *nf.Statistic:
			switch m.Mode {
			case "":
				err = fmt.Errorf("statistic: no mode specified")
			case nf.StatisticNth:
				if m.Every == 0 {
					err = fmt.Errorf("statistic: option \"--mode nth\" requires \"--every\"")
				}
			}
		case *nf.Recent:
			if m.Command == "" {
				err = fmt.Errorf("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'")
			}
		case *nf.SetMatch:
			if m.Name == "" {
				err = fmt.Errorf("set: you must specify --match-set")
			}
		case *nf.Comment:
			if len(m.Text) > 255 {
				err = fmt.Errorf("comment may not exceed 255 characters")
			}
		}
		if err != nil {
			if p.strict {
				return &argError{col: p.colAt(0), msg: err.Error()}
			}
			var args []string
			for j := range p.toks {
				if p.owner[j] == k {
					args = append(args, p.raw(j))
				}
			}
			r.Matches[k] = &nf.Opaque{Name: m.Module(), Args: args}
			p.notes = append(p.notes, note{col: p.colAt(0), msg: fmt.Sprintf("match %q: %v; kept verbatim", m.Module(), err)})
		}
	}
	switch t := r.Target.(type) {
	case *nf.Reject:
		if t.With == "tcp-reset" && p.strict && (r.Proto.Name != "tcp" || r.Proto.Invert) {
			// The kernel's REJECT checkentry refuses tcp-reset unless the rule is -p tcp.
			return &argError{col: p.colAt(0), msg: "RULE_APPEND failed (Invalid argument): REJECT --reject-with tcp-reset needs -p tcp"}
		}
	case *nf.DNAT:
		if !t.To.HasAddr() && !t.To.HasPorts() {
			return &argError{col: p.colAt(0), msg: "DNAT: option \"--to-destination\" must be specified"}
		}
		if t.To.HasPorts() && !portProto(r.Proto) {
			return &argError{col: p.colAt(0), msg: "need TCP, UDP, SCTP or DCCP with port specification"}
		}
	case *nf.SNAT:
		if !t.To.HasAddr() && !t.To.HasPorts() {
			return &argError{col: p.colAt(0), msg: "SNAT: option \"--to-source\" must be specified"}
		}
		if t.To.HasPorts() && !portProto(r.Proto) {
			return &argError{col: p.colAt(0), msg: "need TCP, UDP, SCTP or DCCP with port specification"}
		}
	case *nf.Masquerade:
		if t.MinPort != 0 && !portProto(r.Proto) {
			return &argError{col: p.colAt(0), msg: "need TCP, UDP, SCTP or DCCP with port specification"}
		}
	case *nf.Redirect:
		if t.MinPort != 0 && !portProto(r.Proto) {
			return &argError{col: p.colAt(0), msg: "need TCP, UDP, SCTP or DCCP with port specification"}
		}
	}
	return nil
}

func portProto(m nf.ProtoMatch) bool {
	if m.Invert {
		return false
	}
	switch m.Name {
	case "tcp", "udp", "sctp", "dccp", "udplite":
		return true
	}
	return false
}
