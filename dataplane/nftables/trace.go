package nftables

import (
	"fmt"
	"net/netip"
)

// Outcome is one possible fate of a packet through a node's nftables, with its
// probability (numgen random splits a flow into equally likely branches).
type Outcome struct {
	Probability float64
	// Verdict is accept, drop or reject.
	Verdict VerdictKind
	// Hook is the hook that decided a drop or reject.
	Hook Hook
	// DNAT is the destination the packet was rewritten to, if any.
	DNAT string
	// Masquerade reports whether the packet was masqueraded (or SNATed) on the way out.
	Masquerade bool
	// Delivered is "local" when the packet ends at a local socket, "forward" when it leaves.
	Delivered string
	Path      []Step
	// Packet is the packet as it leaves (after NAT).
	Packet Packet
}

// TraceOptions say where a packet enters the node.
type TraceOptions struct {
	// FromLocal is true when a local process sends the packet (OUTPUT hook); otherwise it
	// arrives from a network interface (PREROUTING).
	FromLocal bool
	// Dynamic pre-loads dynamic sets (session affinity) by set name.
	Dynamic map[string]map[string]bool
}

// replay is a Chooser that follows a fixed prefix of choices and records the branching
// factor of every choice point, so every combination can be enumerated.
type replay struct {
	prefix []int
	pos    int
	arity  []int
}

func (r *replay) Choose(n int) int {
	r.arity = append(r.arity, n)
	c := 0
	if r.pos < len(r.prefix) {
		c = r.prefix[r.pos]
	}
	r.pos++
	return c
}

// Trace follows a first packet (conntrack state new) through the node's hooks in kernel
// order — PREROUTING or OUTPUT, the routing decision (a local destination after DNAT is
// delivered through INPUT, any other is forwarded through FORWARD), then POSTROUTING —
// and returns every possible outcome with its probability, in numgen order.
func (rs *Ruleset) Trace(pkt Packet, isLocal func(netip.Addr) bool, opts TraceOptions) ([]Outcome, error) {
	if pkt.CtState == "" {
		pkt.CtState = "new"
	}
	var outs []Outcome
	var walk func(prefix []int, prob float64) error
	walk = func(prefix []int, prob float64) error {
		ch := &replay{prefix: prefix}
		o, err := rs.traceOnce(pkt, isLocal, opts, ch)
		if err != nil {
			return err
		}
		if len(ch.arity) <= len(prefix) {
			o.Probability = prob
			outs = append(outs, o)
			return nil
		}
		n := ch.arity[len(prefix)]
		for i := 0; i < n; i++ {
			next := append(append([]int(nil), prefix...), i)
			if err := walk(next, prob/float64(n)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(nil, 1); err != nil {
		return nil, err
	}
	return outs, nil
}

const maxOutcomes = 1 << 16

func (rs *Ruleset) traceOnce(in Packet, isLocal func(netip.Addr) bool, opts TraceOptions, ch *replay) (Outcome, error) {
	if len(ch.arity) > maxOutcomes {
		return Outcome{}, fmt.Errorf("too many random branches")
	}
	pkt := in
	pkt.CtStatus = append([]string(nil), in.CtStatus...)
	env := &Env{IsLocal: isLocal, Dynamic: copyDynamic(opts.Dynamic)}
	var o Outcome
	run := func(h Hook) (bool, error) {
		r, err := rs.EvalHook(h, &pkt, env, ch)
		if err != nil {
			return false, fmt.Errorf("hook %s: %w", h, err)
		}
		o.Path = append(o.Path, r.Path...)
		if r.DNAT != "" {
			o.DNAT = r.DNAT
		}
		if r.Masquerade || r.SNAT != "" {
			o.Masquerade = true
		}
		if r.Verdict != VerdictAccept {
			o.Verdict = r.Verdict
			o.Hook = h
			return false, nil
		}
		return true, nil
	}
	first := HookPrerouting
	if opts.FromLocal {
		first = HookOutput
	}
	ok, err := run(first)
	if err != nil || !ok {
		o.Packet = pkt
		return o, err
	}
	local := isLocal != nil && isLocal(pkt.Dst)
	if opts.FromLocal {
		// Locally generated: OUTPUT, POSTROUTING, and for a local destination the
		// loopback delivery through INPUT.
		if ok, err = run(HookPostrouting); err != nil || !ok {
			o.Packet = pkt
			return o, err
		}
		if local {
			pkt.CtState = "new"
			if ok, err = run(HookInput); err != nil || !ok {
				o.Packet = pkt
				return o, err
			}
			o.Delivered = "local"
		} else {
			o.Delivered = "forward"
		}
	} else if local {
		if ok, err = run(HookInput); err != nil || !ok {
			o.Packet = pkt
			return o, err
		}
		o.Delivered = "local"
	} else {
		if ok, err = run(HookForward); err != nil || !ok {
			o.Packet = pkt
			return o, err
		}
		if ok, err = run(HookPostrouting); err != nil || !ok {
			o.Packet = pkt
			return o, err
		}
		o.Delivered = "forward"
	}
	o.Verdict = VerdictAccept
	o.Packet = pkt
	return o, nil
}

func copyDynamic(d map[string]map[string]bool) map[string]map[string]bool {
	if d == nil {
		return nil
	}
	out := make(map[string]map[string]bool, len(d))
	for k, v := range d {
		m := make(map[string]bool, len(v))
		for kk, vv := range v {
			m[kk] = vv
		}
		out[k] = m
	}
	return out
}
