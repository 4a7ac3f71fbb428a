package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
)

// Result is the JSON contract of `knet trace`:
//
//	{"verdict":"ACCEPT|DROP|REJECT","decidedBy":"rule|policy","dnat":[{"to":"IP:PORT","probability":P}],
//	 "masquerade":BOOL,"path":[{"node":N,"table":T,"chain":C,"rule":"-A ...","line":L} | {"node":N,"route":"...","dev":D}]}
//
// When statistic rules split the packet into several possible paths, Branches lists each
// (with its probability, DNAT, verdict, masquerade and path); the top-level path is the first
// branch's, verdict is the verdict of every branch (VerdictVaries says they differ, and then
// verdict is the most probable one), and masquerade is true if any branch is masqueraded
// (MasqueradeVaries says they differ). decidedBy is "route" (beyond rule|policy) when the
// routing decision dropped the packet (no route, blackhole, unreachable or prohibit).
type Result struct {
	Verdict    netfilter.Decision  `json:"verdict"`
	DecidedBy  netfilter.DecidedBy `json:"decidedBy"`
	DNAT       []DNAT              `json:"dnat"`
	Masquerade bool                `json:"masquerade"`
	Path       []Hop               `json:"path"`

	VerdictVaries    bool `json:"verdictVaries,omitempty"`
	MasqueradeVaries bool `json:"masqueradeVaries,omitempty"`
	// Origin is "network" (arrives at PREROUTING) or "local" (sent through OUTPUT).
	Origin   string         `json:"origin"`
	Packet   PacketInfo     `json:"packet"`
	Branches []BranchResult `json:"branches,omitempty"`
	// Assumed lists the matches the evaluator could not evaluate and assumed (any branch).
	Assumed []Assumed `json:"assumed,omitempty"`
}

// PacketInfo echoes the traced packet.
type PacketInfo struct {
	Proto   Protocol `json:"proto"`
	Src     string   `json:"src"`
	Dst     string   `json:"dst"`
	InIface string   `json:"inIface,omitempty"`
}

// DNAT is one possible destination and its probability.
type DNAT struct {
	To          string  `json:"to"`
	Probability float64 `json:"probability"`
}

// Hop is one element of a path: a rule (or chain policy) or a routing decision.
type Hop struct {
	Node  string `json:"node"`
	Hook  string `json:"hook,omitempty"`
	Table string `json:"table,omitempty"`
	Chain string `json:"chain,omitempty"`
	Rule  string `json:"rule,omitempty"`
	Line  int    `json:"line,omitempty"`
	// Probability is the rule's match probability for a statistic rule.
	Probability float64 `json:"probability,omitempty"`
	// NotTaken marks a statistic rule this branch did not match.
	NotTaken bool   `json:"notTaken,omitempty"`
	Route    string `json:"route,omitempty"`
	Dev      string `json:"dev,omitempty"`
}

// BranchResult is one possible path.
type BranchResult struct {
	Probability float64             `json:"probability"`
	Verdict     netfilter.Decision  `json:"verdict"`
	DecidedBy   netfilter.DecidedBy `json:"decidedBy"`
	DNAT        string              `json:"dnat,omitempty"`
	Masquerade  bool                `json:"masquerade"`
	// Delivered is "local", "forwarded" or "sent" for an accepted packet.
	Delivered string `json:"delivered,omitempty"`
	Marks     string `json:"mark,omitempty"`
	Path      []Hop  `json:"path"`
}

// Assumed is a match the evaluator assumed.
type Assumed struct {
	Table  string `json:"table"`
	Chain  string `json:"chain"`
	Line   int    `json:"line,omitempty"`
	Match  string `json:"match"`
	Value  bool   `json:"value"`
	Reason string `json:"reason"`
}

func newResult(n *Node, req Request, flows []*flow, paths bool) *Result {
	name := n.Name
	if name == "" {
		name = "node"
	}
	res := &Result{DNAT: []DNAT{}, Packet: PacketInfo{Proto: req.Proto, Src: netip.AddrPortFrom(req.Src, req.SPort).String(), Dst: netip.AddrPortFrom(req.Dst, req.DPort).String(), InIface: req.InIface}}
	if len(flows) > 0 {
		res.Origin = flows[0].origin
	}
	res.Branches = make([]BranchResult, 0, len(flows))
	res.DNAT = make([]DNAT, 0, len(flows))
	type vp struct {
		v netfilter.Decision
		p float64
	}
	var verdicts []vp // in first-seen order
	dnatAddrs := make([]netip.AddrPort, 0, len(flows))
	var dnatIdx map[netip.AddrPort]int // only for large fan-outs
	var seenAssumed map[string]bool
	anyMasq, allMasq := false, true
	for _, f := range flows {
		b := f.b
		br := BranchResult{Probability: netfilter.Probability(b.Probability), Masquerade: b.Masqueraded(), Delivered: f.delivered}
		switch {
		case b.Done():
			br.Verdict, br.DecidedBy = b.Verdict, b.DecidedBy
		case b.FilterVerdict != "":
			br.Verdict, br.DecidedBy = netfilter.DecisionAccept, b.FilterDecidedBy
		default:
			br.Verdict, br.DecidedBy = netfilter.DecisionAccept, netfilter.DecidedByPolicy
		}
		if paths && b.Packet.Mark != 0 {
			br.Marks = fmt.Sprintf("0x%x", b.Packet.Mark)
		}
		if d, ok := b.FirstDNAT(); ok {
			i := -1
			if dnatIdx != nil {
				if j, ok := dnatIdx[d]; ok {
					i = j
				}
			} else {
				for j, a := range dnatAddrs {
					if a == d {
						i = j
						break
					}
				}
			}
			if i >= 0 {
				br.DNAT = res.DNAT[i].To
				res.DNAT[i].Probability = netfilter.Probability(res.DNAT[i].Probability + b.Probability)
			} else {
				br.DNAT = d.String()
				dnatAddrs = append(dnatAddrs, d)
				res.DNAT = append(res.DNAT, DNAT{To: br.DNAT, Probability: netfilter.Probability(b.Probability)})
				if dnatIdx == nil && len(dnatAddrs) > 32 {
					dnatIdx = make(map[netip.AddrPort]int, len(flows))
					for j, a := range dnatAddrs {
						dnatIdx[a] = j
					}
				} else if dnatIdx != nil {
					dnatIdx[d] = len(dnatAddrs) - 1
				}
			}
		}
		if paths {
			br.Path = hops(n, name, f)
		}
		found := false
		for i := range verdicts {
			if verdicts[i].v == br.Verdict {
				verdicts[i].p += b.Probability
				found = true
			}
		}
		if !found {
			verdicts = append(verdicts, vp{br.Verdict, b.Probability})
		}
		anyMasq = anyMasq || br.Masquerade
		allMasq = allMasq && br.Masquerade
		for _, a := range b.Assumed {
			k := fmt.Sprintf("%s/%s/%d/%s", a.Table, a.Chain, a.Num, a.Match)
			if seenAssumed[k] {
				continue
			}
			if seenAssumed == nil {
				seenAssumed = map[string]bool{}
			}
			seenAssumed[k] = true
			res.Assumed = append(res.Assumed, Assumed{Table: string(a.Table), Chain: a.Chain, Line: a.Line, Match: a.Match, Value: a.Value, Reason: a.Reason})
		}
		res.Branches = append(res.Branches, br)
	}
	if len(verdicts) > 0 {
		best := verdicts[0]
		for _, v := range verdicts[1:] {
			if v.p > best.p+1e-12 {
				best = v
			}
		}
		res.Verdict = best.v
		res.VerdictVaries = len(verdicts) > 1
		for _, br := range res.Branches {
			if br.Verdict == best.v {
				res.DecidedBy = br.DecidedBy
				res.Path = br.Path
				break
			}
		}
	}
	if paths && res.Path == nil {
		res.Path = []Hop{}
	}
	res.Masquerade = anyMasq
	res.MasqueradeVaries = anyMasq && !allMasq
	if len(res.Branches) == 1 {
		res.Branches = nil
	}
	return res
}

func hops(n *Node, name string, f *flow) []Hop {
	steps := f.b.Steps()
	out := make([]Hop, 0, len(steps)+len(f.routes))
	ri := 0
	for i, s := range steps {
		for ri < len(f.routes) && f.routes[ri].after <= i {
			out = append(out, f.routes[ri].hop)
			ri++
		}
		h := Hop{Node: name, Hook: string(s.Hook), Table: string(s.Table), Chain: s.Chain}
		if s.Rule == nil {
			h.Rule = fmt.Sprintf("-P %s %s", s.Chain, s.Policy)
		} else {
			h.Rule = ruleText(n, s.Chain, s.Rule)
			h.Line = s.Rule.Line
		}
		if s.Probability < 1 {
			h.Probability = netfilter.Probability(s.Probability)
			h.NotTaken = s.Negated
		}
		out = append(out, h)
	}
	for ; ri < len(f.routes); ri++ {
		out = append(out, f.routes[ri].hop)
	}
	return out
}

func ruleText(n *Node, chain string, r *netfilter.Rule) string {
	if n.texts != nil {
		if s, ok := n.texts.Load(r); ok {
			return s.(string)
		}
		s := formatRule(n, chain, r)
		n.texts.Store(r, s)
		return s
	}
	return formatRule(n, chain, r)
}

func formatRule(n *Node, chain string, r *netfilter.Rule) string {
	if n.FormatRule != nil {
		return n.FormatRule(chain, r)
	}
	if r.Text != "" {
		return "-A " + chain + " " + r.Text
	}
	fam := netfilter.IPv4
	if r.Src.Prefix.Addr().Is6() || r.Dst.Prefix.Addr().Is6() {
		fam = netfilter.IPv6
	}
	return iptablessave.FormatRule(chain, r, fam)
}

// Format is an output format; the values are the -o tokens.
type Format string

// Output formats.
const (
	FormatText Format = "text"
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// ParseFormat parses an -o value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatJSON, FormatYAML:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q (want text, json or yaml)", s)
}

// Write prints r in format f.
func (r *Result) Write(w io.Writer, f Format) error {
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case FormatYAML:
		b, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case FormatText, "":
		return r.writeText(w)
	}
	return fmt.Errorf("unknown output format %q", f)
}

func prob(p float64) string { return fmt.Sprintf("%.11f", p) }

// writeText prints a hop-by-hop diagram: hook → table → chain → rule, with the DNAT fan-out.
func (r *Result) writeText(w io.Writer) error {
	var sb strings.Builder
	from := "from the network"
	if r.Origin == "local" {
		from = "sent by the node"
	}
	fmt.Fprintf(&sb, "%s %s -> %s (%s)\n", r.Packet.Proto, r.Packet.Src, r.Packet.Dst, from)
	v := string(r.Verdict)
	if r.VerdictVaries {
		v += " (most likely; branches differ)"
	}
	fmt.Fprintf(&sb, "verdict:    %s by %s\n", v, r.DecidedBy)
	m := fmt.Sprint(r.Masquerade)
	if r.MasqueradeVaries {
		m += " (some branches only)"
	}
	fmt.Fprintf(&sb, "masquerade: %s\n", m)
	if len(r.DNAT) == 0 {
		sb.WriteString("dnat:       none\n")
	} else {
		sb.WriteString("dnat:\n")
		for _, d := range r.DNAT {
			fmt.Fprintf(&sb, "  ├─ %-24s p=%s\n", d.To, prob(d.Probability))
		}
	}
	branches := r.Branches
	if len(branches) == 0 {
		branches = []BranchResult{{Probability: 1, Verdict: r.Verdict, DecidedBy: r.DecidedBy, Path: r.Path, Masquerade: r.Masquerade}}
		if len(r.DNAT) > 0 {
			branches[0].DNAT = r.DNAT[0].To
		}
	}
	for i, b := range branches {
		sb.WriteString("\n")
		if len(r.Branches) > 0 {
			fmt.Fprintf(&sb, "branch %d of %d, p=%s:", i+1, len(branches), prob(b.Probability))
		} else {
			sb.WriteString("path:")
		}
		if b.DNAT != "" {
			fmt.Fprintf(&sb, " DNAT %s,", b.DNAT)
		}
		fmt.Fprintf(&sb, " %s by %s, masquerade %v", b.Verdict, b.DecidedBy, b.Masquerade)
		if b.Delivered != "" {
			fmt.Fprintf(&sb, ", %s", b.Delivered)
		}
		sb.WriteString("\n")
		hook := ""
		for _, h := range b.Path {
			if h.Route != "" {
				dev := ""
				if h.Dev != "" {
					dev = " dev " + h.Dev
				}
				fmt.Fprintf(&sb, "  ── routing: %s%s\n", h.Route, dev)
				hook = ""
				continue
			}
			if h.Hook != hook {
				fmt.Fprintf(&sb, "  %s\n", h.Hook)
				hook = h.Hook
			}
			extra := ""
			if h.Probability > 0 {
				if h.NotTaken {
					extra = fmt.Sprintf("  [not taken, p=%s]", prob(h.Probability))
				} else {
					extra = fmt.Sprintf("  [p=%s]", prob(h.Probability))
				}
			}
			line := ""
			if h.Line > 0 {
				line = fmt.Sprintf("  (line %d)", h.Line)
			}
			fmt.Fprintf(&sb, "    %-7s %s%s%s\n", h.Table, h.Rule, extra, line)
		}
	}
	if len(r.Assumed) > 0 {
		sb.WriteString("\nassumed (not evaluated):\n")
		for _, a := range r.Assumed {
			fmt.Fprintf(&sb, "  %s %s line %d: %s assumed %v (%s)\n", a.Table, a.Chain, a.Line, a.Match, a.Value, a.Reason)
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}
