package trace

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/nftables"
)

// TraceNFT runs req through an nftables ruleset (kube-proxy's nftables mode) with the
// nftables evaluator and returns the same Result as Trace: every possible destination of
// the `numgen random` verdict maps with its probability, masquerade (the masquerade
// statement in the nat postrouting chain), the verdict and which base chains and rules
// decided, in the hook order the kernel runs them. local reports whether an address is the
// node's (fib ... type local and the routing decision); a local source is sent through
// OUTPUT, any other arrives at PREROUTING.
func TraceNFT(node string, rs *nftables.Ruleset, local func(netip.Addr) bool, req Request) (*Result, error) {
	if rs == nil {
		return nil, fmt.Errorf("trace: node %s has no nftables ruleset", node)
	}
	sport := req.SPort
	if sport == 0 {
		sport = DefaultSPort
	}
	pkt := nftables.Packet{Src: req.Src, Dst: req.Dst, Proto: string(req.Proto), SPort: sport, DPort: req.DPort, IIF: req.InIface, Mark: req.Mark}
	fromLocal := local != nil && local(req.Src)
	outs, err := rs.Trace(pkt, local, nftables.TraceOptions{FromLocal: fromLocal})
	if err != nil {
		return nil, fmt.Errorf("trace: node %s: %w", node, err)
	}
	res := &Result{Packet: PacketInfo{Proto: req.Proto, Src: req.Src.String(), Dst: req.Dst.String(), InIface: req.InIface}, Origin: "network"}
	if fromLocal {
		res.Origin = "local"
	}
	dnatIdx := map[string]int{}
	for i, o := range outs {
		b := BranchResult{Probability: o.Probability, Verdict: nftDecision(o.Verdict), DecidedBy: netfilter.DecidedByRule,
			DNAT: o.DNAT, Masquerade: o.Masquerade, Delivered: o.Delivered, Marks: "0x" + strconv.FormatUint(uint64(o.Packet.Mark), 16)}
		if len(o.Path) > 0 && o.Path[len(o.Path)-1].Rule == 0 {
			b.DecidedBy = netfilter.DecidedByPolicy
		}
		for _, st := range o.Path {
			h := Hop{Node: node, Hook: string(st.Hook), Table: string(st.Family) + " " + st.Table, Chain: st.Chain, Line: st.Rule}
			if st.Rule > 0 {
				h.Rule = st.Text
			}
			b.Path = append(b.Path, h)
		}
		res.Branches = append(res.Branches, b)
		if o.DNAT != "" && b.Verdict == netfilter.DecisionAccept {
			if j, ok := dnatIdx[o.DNAT]; ok {
				res.DNAT[j].Probability += o.Probability
			} else {
				dnatIdx[o.DNAT] = len(res.DNAT)
				res.DNAT = append(res.DNAT, DNAT{To: o.DNAT, Probability: o.Probability})
			}
		}
		if i == 0 {
			res.Verdict, res.DecidedBy, res.Masquerade, res.Path = b.Verdict, b.DecidedBy, b.Masquerade, b.Path
			continue
		}
		if b.Verdict != res.Verdict {
			res.VerdictVaries = true
		}
		if b.Masquerade != res.Masquerade {
			res.MasqueradeVaries = true
		}
	}
	if len(res.Branches) == 1 {
		res.Branches = nil
	}
	return res, nil
}

func nftDecision(v nftables.VerdictKind) netfilter.Decision {
	switch v {
	case nftables.VerdictDrop:
		return netfilter.DecisionDrop
	case nftables.VerdictReject:
		return netfilter.DecisionReject
	}
	return netfilter.DecisionAccept
}
