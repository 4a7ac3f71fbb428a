package trace

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/netfilter"
)

// WithIPVS folds the node's IPVS into a node trace: when the packet reaches a local virtual
// service (kube-proxy's IPVS mode binds every Service address to kube-ipvs0, so the packet is
// delivered locally and IPVS takes it at LOCAL_IN; a node's own packet at LOCAL_OUT), each
// accepted branch without a netfilter DNAT splits into the real servers a new connection can
// get now, with their probabilities (dataplane/ipvs Candidates: one server for rr on fresh
// state, the hash's server for sh/dh/mh, a share for random ones). A branch routed through
// FORWARD is left alone: IPVS never sees it. res is changed and returned.
func WithIPVS(res *Result, st *ipvs.State, node string, req Request) *Result {
	if res == nil || st == nil {
		return res
	}
	svc := st.Lookup(ipvs.Protocol(req.Proto), req.Dst, req.DPort, 0)
	if svc == nil {
		return res
	}
	sport := req.SPort
	if sport == 0 {
		sport = DefaultSPort
	}
	hook := "LOCAL_IN"
	if res.Origin == "local" {
		hook = "LOCAL_OUT"
	}
	branches := res.Branches
	if len(branches) == 0 {
		branches = []BranchResult{{Probability: 1, Verdict: res.Verdict, DecidedBy: res.DecidedBy, Masquerade: res.Masquerade, Path: res.Path}}
	}
	var out []BranchResult
	for _, b := range branches {
		if b.Verdict != netfilter.DecisionAccept || b.DNAT != "" || forwarded(b) {
			out = append(out, b)
			continue
		}
		choices := st.Candidates(svc, ipvs.Packet{Proto: ipvs.Protocol(req.Proto), Src: req.Src, SrcPort: sport, Dst: req.Dst, DstPort: req.DPort})
		vs := netip.AddrPortFrom(req.Dst, req.DPort)
		if len(choices) == 0 {
			nb := b
			nb.Verdict = netfilter.DecisionDrop
			nb.Path = append(append([]Hop(nil), b.Path...), Hop{Node: node, Hook: hook, Table: "ipvs", Chain: vs.String(),
				Rule: fmt.Sprintf("IPVS %s %s %s: no available real server, the packet is dropped", strings.ToUpper(string(req.Proto)), vs, svc.Scheduler)})
			out = append(out, nb)
			continue
		}
		for _, ch := range choices {
			to := netip.AddrPortFrom(ch.Dest.Addr, ch.Dest.Port)
			nb := b
			nb.Probability = b.Probability * ch.Probability
			nb.DNAT = to.String()
			nb.Path = append(append([]Hop(nil), b.Path...), Hop{Node: node, Hook: hook, Table: "ipvs", Chain: vs.String(),
				Rule: fmt.Sprintf("IPVS %s %s %s → %s (%s, weight %d, %s)", strings.ToUpper(string(req.Proto)), vs, svc.Scheduler, to, ch.Dest.Forward, ch.Dest.Weight, ch.Reason)})
			out = append(out, nb)
		}
	}
	res.Branches = out
	res.DNAT = nil
	idx := map[string]int{}
	for i, b := range out {
		if b.DNAT != "" && b.Verdict == netfilter.DecisionAccept {
			if j, ok := idx[b.DNAT]; ok {
				res.DNAT[j].Probability += b.Probability
			} else {
				idx[b.DNAT] = len(res.DNAT)
				res.DNAT = append(res.DNAT, DNAT{To: b.DNAT, Probability: b.Probability})
			}
		}
		if i == 0 {
			res.Verdict, res.DecidedBy, res.Masquerade, res.Path = b.Verdict, b.DecidedBy, b.Masquerade, b.Path
		} else if b.Verdict != res.Verdict {
			res.VerdictVaries = true
		}
	}
	if len(res.Branches) == 1 {
		res.Branches = nil
	}
	return res
}

// forwarded reports whether the branch was routed through FORWARD rather than delivered
// locally: IPVS only sees a network packet at LOCAL_IN.
func forwarded(b BranchResult) bool {
	if b.Delivered == "forwarded" {
		return true
	}
	for _, h := range b.Path {
		if h.Hook == "FORWARD" {
			return true
		}
	}
	return false
}
