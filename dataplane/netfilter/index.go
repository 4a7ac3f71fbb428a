package netfilter

import (
	"net/netip"
	"slices"
)

// Dispatch indexes: a large chain (kube-proxy's KUBE-SERVICES has one rule per Service port,
// 30,000 and more on big clusters) is scanned in order by the kernel, but most of its rules
// can only match one (destination, protocol, destination port). The index records, per chain,
// which rules have such a necessary condition and which do not ("generic" rules), so that
// from rule i the evaluator jumps straight to the next rule that could match the packet: the
// first generic rule at or after i, or the first rule at or after i keyed by the packet's
// (dst, proto, dport), (dst, proto), (dst) or (proto, dport). Every candidate is still fully
// evaluated, in order, so the result is the same as the in-order scan (the differential test
// in index_test.go checks this on random rulesets).

// indexMinRules is the chain length from which a chain gets an index: below it the
// in-order scan is as fast as the lookups.
const indexMinRules = 32

type ikey struct {
	dst   netip.Addr // invalid: any
	proto uint8      // 0: any
	dport uint16     // 0: any
}

type chainIndex struct {
	generic []int
	keyed   map[ikey][]int
}

// ruleKey returns the necessary condition of r as a key, and false if r has none.
func ruleKey(r *Rule) (ikey, bool) {
	var k ikey
	if r.Dst.IsSet() && !r.Dst.Invert && r.Dst.Prefix.IsSingleIP() {
		k.dst = r.Dst.Prefix.Addr().Unmap()
	}
	if r.Proto.IsSet() && !r.Proto.Invert {
		if n, ok := r.Proto.Number(); ok {
			k.proto = n
		}
	}
	if k.proto != 0 {
		for _, m := range r.Matches {
			var pm PortMatch
			switch m := m.(type) {
			case *TCP:
				pm = m.DPort
			case *UDP:
				pm = m.DPort
			case *SCTP:
				pm = m.DPort
			default:
				continue
			}
			if pm.Set && !pm.Invert && pm.Range.Lo == pm.Range.Hi && pm.Range.Lo != 0 {
				k.dport = pm.Range.Lo
				break
			}
		}
	}
	switch {
	case k.dst.IsValid():
		if k.proto == 0 {
			k.dport = 0
		}
		return k, true
	case k.proto != 0 && k.dport != 0:
		return k, true
	}
	return ikey{}, false
}

func buildIndex(c *evChain, min int) *chainIndex {
	if len(c.rules) < min {
		return nil
	}
	ci := &chainIndex{keyed: map[ikey][]int{}}
	for i := range c.rules {
		if k, ok := ruleKey(c.rules[i].r); ok {
			ci.keyed[k] = append(ci.keyed[k], i)
		} else {
			ci.generic = append(ci.generic, i)
		}
	}
	return ci
}

// firstAtOrAfter returns the first element of the sorted list l that is >= i, or end.
func firstAtOrAfter(l []int, i, end int) int {
	j, _ := slices.BinarySearch(l, i)
	if j < len(l) && l[j] < end {
		return l[j]
	}
	return end
}

// next returns the first rule index >= i that could match p (len(rules) when none).
func (ci *chainIndex) next(i int, p *Packet, proto uint8, n int) int {
	best := firstAtOrAfter(ci.generic, i, n)
	if best == i {
		return i
	}
	dst := p.Dst.Unmap()
	keys := [4]ikey{
		{dst: dst, proto: proto, dport: p.DPort},
		{dst: dst, proto: proto},
		{dst: dst},
		{proto: proto, dport: p.DPort},
	}
	for _, k := range keys {
		if l, ok := ci.keyed[k]; ok {
			best = firstAtOrAfter(l, i, best)
		}
	}
	return best
}

// Indexed returns an evaluator over the same rules that skips, in large chains, the rules
// that cannot match the packet (see the dispatch index above). Results are identical to
// the in-order evaluator's.
func (ev *Evaluator) Indexed() *Evaluator {
	c := *ev
	c.indexed = true
	return &c
}
