package netfilter

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testIndexMin indexes chains from 8 rules so that small random chains are indexed.
const testIndexMin = 8

// randomRuleset builds a ruleset whose chains are long enough to be indexed, drawing
// addresses, protocols and ports from small pools so that keyed rules collide with packets.
// User chains only jump to higher-numbered chains (no loops).
func randomRuleset(r *rand.Rand) *Ruleset {
	dsts := []string{"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.0.0/24", "10.0.1.1/32"}
	protos := []string{"tcp", "udp", "sctp", ""}
	ports := []uint16{80, 443, 53, 8080}
	rs := &Ruleset{Family: IPv4}
	const nUser = 6
	for _, tn := range []TableName{NAT, Filter} {
		tb := rs.EnsureTable(tn)
		for u := 0; u < nUser; u++ {
			tb.EnsureChain(fmt.Sprintf("U%d", u))
		}
		for ci, c := range tb.Chains {
			n := testIndexMin + r.IntN(20)
			if !c.Builtin {
				n = r.IntN(2 * testIndexMin)
			}
			if c.Builtin && r.IntN(3) == 0 {
				c.Policy = PolicyDrop
			}
			for k := 0; k < n; k++ {
				rule := &Rule{Line: k + 1}
				if r.IntN(4) != 0 {
					rule.Dst = pfx(dsts[r.IntN(len(dsts))])
					rule.Dst.Invert = r.IntN(8) == 0
				}
				if p := protos[r.IntN(len(protos))]; p != "" {
					rule.Proto = ProtoMatch{Name: p, Invert: r.IntN(10) == 0}
					if r.IntN(3) != 0 {
						pm := PortMatch{Set: true, Invert: r.IntN(8) == 0, Range: PortRange{ports[r.IntN(len(ports))], 0}}
						pm.Range.Hi = pm.Range.Lo
						if r.IntN(6) == 0 {
							pm.Range.Hi = pm.Range.Lo + 100
						}
						switch p {
						case "tcp":
							rule.Matches = append(rule.Matches, &TCP{DPort: pm})
						case "udp":
							rule.Matches = append(rule.Matches, &UDP{DPort: pm})
						default:
							rule.Matches = append(rule.Matches, &SCTP{DPort: pm})
						}
					}
				}
				if r.IntN(6) == 0 {
					rule.Matches = append(rule.Matches, &Mark{Value: 0x4000, Mask: 0x4000, Invert: r.IntN(2) == 0})
				}
				if r.IntN(12) == 0 {
					rule.Matches = append(rule.Matches, random(r.Float64()))
				}
				// Later user chains only (by position), so the jump graph is acyclic.
				var later []string
				for _, d := range tb.Chains[ci+1:] {
					if !d.Builtin {
						later = append(later, d.Name)
					}
				}
				switch x := r.IntN(10); {
				case x < 3 && len(later) > 0:
					rule.Target = &Jump{Chain: later[r.IntN(len(later))], Goto: r.IntN(4) == 0}
				case x == 3:
					rule.Target = verdict(VerdictAccept)
				case x == 4:
					rule.Target = verdict(VerdictDrop)
				case x == 5:
					rule.Target = verdict(VerdictReturn)
				case x == 6:
					rule.Target = &MarkTarget{Value: 0x4000, Mask: 0x4000}
				case x == 7 && tn == NAT:
					rule.Target = dnat(fmt.Sprintf("10.9.0.%d:%d", 1+r.IntN(5), ports[r.IntN(len(ports))]))
				case x == 8:
					rule.Target = &Reject{}
				}
				c.Append(rule)
			}
		}
	}
	return rs
}

func randomPacket(r *rand.Rand) Packet {
	dsts := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.77", "10.0.1.1", "192.168.0.2"}
	protos := []string{"tcp", "udp", "sctp", "icmp"}
	ports := []uint16{80, 443, 53, 8080, 150, 9999}
	p := Packet{
		Src:   netip.MustParseAddr("10.1.0.5"),
		Dst:   netip.MustParseAddr(dsts[r.IntN(len(dsts))]),
		Proto: protos[r.IntN(len(protos))],
		SPort: 40000,
		DPort: ports[r.IntN(len(ports))],
	}
	if r.IntN(4) == 0 {
		p.Mark = 0x4000
	}
	return p
}

// TestIndexMatchesLinear is the differential test: on random rulesets and packets, the
// indexed evaluator returns exactly the linear evaluator's branches (probabilities, verdicts,
// paths, events, packets).
func TestIndexMatchesLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	opts := cmp.Options{cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})}
	local := NewLocalAddrs(netip.MustParseAddr("192.168.0.2"))
	indexedChains := 0
	for round := 0; round < 100; round++ {
		rs := randomRuleset(r)
		lin, err := newEvaluator(rs, testIndexMin)
		if err != nil {
			t.Fatalf("round %d: NewEvaluator: %v", round, err)
		}
		for _, tb := range lin.tables {
			for _, c := range tb.chains {
				if c.idx != nil {
					indexedChains++
				}
			}
		}
		idx := lin.Indexed()
		for k := 0; k < 20; k++ {
			p := randomPacket(r)
			for _, h := range Hooks() {
				want := summarize(lin.Eval(h, NewEnv(local), p))
				got := summarize(idx.Eval(h, NewEnv(local), p))
				if diff := cmp.Diff(want, got, opts); diff != "" {
					t.Fatalf("round %d packet %+v hook %s: indexed differs from linear (-linear +indexed):\n%s", round, p, h, diff)
				}
			}
		}
	}
	if indexedChains == 0 {
		t.Fatal("no chain was indexed: the test exercises nothing")
	}
}

// branchSummary is everything a Branch says, with rules identified by position (the rule
// pointers are the same objects for both evaluators).
type branchSummary struct {
	P        float64
	Verdict  Decision
	By       DecidedBy
	FVerdict Decision
	FBy      DecidedBy
	Packet   Packet
	Path     []string
	Events   []Event
	Assumed  []Assumption
}

func summarize(bs []*Branch) []branchSummary {
	out := make([]branchSummary, 0, len(bs))
	for _, b := range bs {
		s := branchSummary{P: b.Probability, Verdict: b.Verdict, By: b.DecidedBy, FVerdict: b.FilterVerdict, FBy: b.FilterDecidedBy, Packet: b.Packet, Events: b.Events, Assumed: b.Assumed}
		for _, st := range b.Steps() {
			s.Path = append(s.Path, fmt.Sprintf("%s/%s/%s/%d/%s/%v/%v/%p", st.Hook, st.Table, st.Chain, st.Num, st.Policy, st.Probability, st.Negated, st.Rule))
		}
		out = append(out, s)
	}
	return out
}

// FuzzIndexMatchesLinear drives the differential test with fuzzer-chosen seeds: any
// ruleset/packet pair on which the indexed and in-order evaluators disagree (or panic) is
// a failure.
func FuzzIndexMatchesLinear(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Add(uint64(0), uint64(0))
	local := NewLocalAddrs(netip.MustParseAddr("192.168.0.2"))
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		r := rand.New(rand.NewPCG(s1, s2))
		rs := randomRuleset(r)
		lin, err := newEvaluator(rs, testIndexMin)
		if err != nil {
			t.Fatalf("NewEvaluator: %v", err)
		}
		idx := lin.Indexed()
		for k := 0; k < 5; k++ {
			p := randomPacket(r)
			for _, h := range Hooks() {
				want := summarize(lin.Eval(h, NewEnv(local), p))
				got := summarize(idx.Eval(h, NewEnv(local), p))
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})); diff != "" {
					t.Fatalf("packet %+v hook %s (-linear +indexed):\n%s", p, h, diff)
				}
			}
		}
	})
}
