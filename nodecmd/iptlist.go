package nodecmd

// `iptables [-t T] -L [CHAIN] -n [-v] [-x] [--line-numbers]`, as iptables v1.8.9 (nf_tables)
// prints it: iptables/xshared.c print_header, iptables/nft-shared.c print_firewall (via
// nft_ipv4_print_rule), libxtables xtables_print_num and each libxt_*.c print function.
// Checked against the real binary in a scratch network namespace (testdata/README.md): with
// -n this version prints protocols as numbers ("0" for all, "6" for tcp).

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// listFormat is iptables' FMT_* flag set for -L.
type listFormat struct {
	numeric, verbose, exact, lineNumbers bool
}

// writeList prints table t (chain "" = every chain) as `iptables -L` does.
func writeList(w io.Writer, rs *nf.Ruleset, t *nf.Table, chain string, f listFormat) error {
	var chains []*nf.Chain
	if chain != "" {
		c := t.Chain(chain)
		if c == nil {
			return fmt.Errorf("iptables v1.8.9 (nf_tables): chain `%s' in table `%s' is incompatible, use 'nft' tool", chain, t.Name)
		}
		chains = []*nf.Chain{c}
	} else {
		var user []*nf.Chain
		for _, c := range t.Chains {
			if c.Builtin {
				chains = append(chains, c)
			} else {
				user = append(user, c)
			}
		}
		sort.Slice(user, func(i, j int) bool { return user[i].Name < user[j].Name })
		chains = append(chains, user...)
	}
	var b strings.Builder
	for i, c := range chains {
		if i > 0 {
			b.WriteString("\n")
		}
		writeChainHeader(&b, t, c, f)
		for n, r := range c.Rules {
			writeRuleLine(&b, r, n+1, f, rs.Family)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeChainHeader(b *strings.Builder, t *nf.Table, c *nf.Chain, f listFormat) {
	fmt.Fprintf(b, "Chain %s", c.Name)
	if c.Builtin {
		fmt.Fprintf(b, " (policy %s", c.Policy)
		if f.verbose {
			b.WriteString(" ")
			printNum(b, c.Counters.Packets, f, true)
			b.WriteString("packets, ")
			printNum(b, c.Counters.Bytes, f, true)
			b.WriteString("bytes")
		}
		b.WriteString(")\n")
	} else {
		fmt.Fprintf(b, " (%d references)\n", t.References(c.Name))
	}
	if f.lineNumbers {
		fmt.Fprintf(b, "%-4s ", "num")
	}
	if f.verbose {
		if !f.exact {
			fmt.Fprintf(b, "%5s %5s ", "pkts", "bytes")
		} else {
			fmt.Fprintf(b, "%8s %10s ", "pkts", "bytes")
		}
	}
	fmt.Fprintf(b, "%-9s ", "target")
	b.WriteString(" prot opt")
	if f.verbose {
		fmt.Fprintf(b, " %-6s %-6s ", "in", "out")
	}
	fmt.Fprintf(b, " %-19s  %-19s \n", "source", "destination")
}

// printNum is xtables_print_num; notable is FMT_NOTABLE (the policy line).
func printNum(b *strings.Builder, n uint64, f listFormat, notable bool) {
	if f.exact {
		if notable {
			fmt.Fprintf(b, "%d ", n)
		} else {
			fmt.Fprintf(b, "%8d ", n)
		}
		return
	}
	if n <= 99999 {
		if notable {
			fmt.Fprintf(b, "%d ", n)
		} else {
			fmt.Fprintf(b, "%5d ", n)
		}
		return
	}
	for _, unit := range []string{"K", "M", "G"} {
		n = (n + 500) / 1000
		if n <= 9999 {
			if notable {
				fmt.Fprintf(b, "%d%s ", n, unit)
			} else {
				fmt.Fprintf(b, "%4d%s ", n, unit)
			}
			return
		}
	}
	n = (n + 500) / 1000
	if notable {
		fmt.Fprintf(b, "%dT ", n)
	} else {
		fmt.Fprintf(b, "%4dT ", n)
	}
}

func inv(b bool) string {
	if b {
		return "!"
	}
	return ""
}

func writeRuleLine(b *strings.Builder, r *nf.Rule, num int, f listFormat, fam nf.Family) {
	if f.lineNumbers {
		fmt.Fprintf(b, "%-4d ", num)
	}
	if f.verbose {
		printNum(b, r.Counters.Packets, f, false)
		printNum(b, r.Counters.Bytes, f, false)
	}
	target := ""
	gotoChain := false
	if r.Target != nil {
		target = r.Target.TargetName()
		if j, ok := r.Target.(*nf.Jump); ok && j.Goto {
			gotoChain = true
		}
	}
	fmt.Fprintf(b, "%-9s ", target)
	if r.Proto.Invert {
		b.WriteString("!")
	} else {
		b.WriteString(" ")
	}
	proto := 0
	if r.Proto.IsSet() {
		if n, ok := r.Proto.Number(); ok {
			proto = int(n)
		}
	}
	fmt.Fprintf(b, "%-5d", proto)
	switch r.Fragment {
	case nf.FragmentOnly:
		b.WriteString("-f ")
	case nf.FragmentNotOnly:
		b.WriteString("!f ")
	default:
		b.WriteString("-- ")
	}
	if f.verbose {
		in, out := "*", "*"
		if r.In.Name != "" {
			in = inv(r.In.Invert) + r.In.Name
		} else if r.In.Invert {
			in = "!*"
		}
		if r.Out.Name != "" {
			out = inv(r.Out.Invert) + r.Out.Name
		} else if r.Out.Invert {
			out = "!*"
		}
		fmt.Fprintf(b, " %-6s %-6s ", in, out)
	}
	writeAddr(b, r.Src, fam)
	writeAddr(b, r.Dst, fam)
	for _, m := range r.Matches {
		writeMatch(b, m)
	}
	if gotoChain {
		b.WriteString("[goto] ")
	}
	writeTarget(b, r.Target)
	b.WriteString("\n")
}

func writeAddr(b *strings.Builder, a nf.AddrMatch, fam nf.Family) {
	if a.Invert {
		b.WriteString("!")
	} else {
		b.WriteString(" ")
	}
	var s string
	switch {
	case !a.Prefix.IsValid() && fam == nf.IPv6:
		s = "::/0"
	case !a.Prefix.IsValid():
		s = "0.0.0.0/0"
	case a.Prefix.IsSingleIP():
		s = a.Prefix.Addr().String()
	default:
		s = a.Prefix.Masked().String()
	}
	fmt.Fprintf(b, "%-19s ", s)
}

func portRange(name string, p nf.PortMatch) string {
	if !p.Set {
		return ""
	}
	if p.Range.Lo == p.Range.Hi {
		return fmt.Sprintf(" %s:%s%d", name, inv(p.Invert), p.Range.Lo)
	}
	return fmt.Sprintf(" %ss:%s%d:%d", name, inv(p.Invert), p.Range.Lo, p.Range.Hi)
}

func writeMatch(b *strings.Builder, m nf.Match) {
	switch m := m.(type) {
	case *nf.Comment:
		fmt.Fprintf(b, " /* %s */", m.Text)
	case *nf.TCP:
		b.WriteString(" tcp")
		b.WriteString(portRange("spt", m.SPort))
		b.WriteString(portRange("dpt", m.DPort))
		if m.OptionSet {
			fmt.Fprintf(b, " option=%s%d", inv(m.OptionInvert), m.Option)
		}
		if m.FlagsSet {
			fmt.Fprintf(b, " flags:%s0x%02X/0x%02X", inv(m.FlagsInvert), m.FlagsMask, m.FlagsComp)
		}
	case *nf.UDP:
		b.WriteString(" udp")
		b.WriteString(portRange("spt", m.SPort))
		b.WriteString(portRange("dpt", m.DPort))
	case *nf.SCTP:
		b.WriteString(" sctp")
		b.WriteString(portRange("spt", m.SPort))
		b.WriteString(portRange("dpt", m.DPort))
	case *nf.Multiport:
		dir := map[nf.MultiportDir]string{nf.MultiportSource: "sports", nf.MultiportDest: "dports", nf.MultiportBoth: "ports"}[m.Dir]
		fmt.Fprintf(b, " multiport %s ", dir)
		if m.Invert {
			b.WriteString(" !")
		}
		for i, p := range m.Ports {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(b, "%d", p.Lo)
			if p.Hi != p.Lo {
				fmt.Fprintf(b, ":%d", p.Hi)
			}
		}
	case *nf.Mark:
		b.WriteString(" mark match")
		if m.Invert {
			b.WriteString(" !")
		}
		writeMarkValue(b, m.Value, m.Mask)
	case *nf.Connmark:
		b.WriteString(" connmark match ")
		if m.Invert {
			b.WriteString("!")
		}
		writeMarkValue(b, m.Value, m.Mask)
	case *nf.Conntrack:
		if m.StateSet {
			if m.StateInvert {
				b.WriteString(" !")
			}
			b.WriteString(" ctstate " + strings.Join(m.State.Names(), ","))
		}
		if m.StatusSet {
			if m.StatusInvert {
				b.WriteString(" !")
			}
			b.WriteString(" ctstatus " + strings.Join(m.Status.Names(), ","))
		}
		if m.Dir != "" {
			b.WriteString(" ctdir " + m.Dir)
		}
	case *nf.State:
		if m.Invert {
			b.WriteString(" !")
		}
		b.WriteString(" state " + strings.Join(m.States.Names(), ","))
	case *nf.Statistic:
		switch m.Mode {
		case nf.StatisticRandom:
			fmt.Fprintf(b, " statistic mode random%s probability %.11f", map[bool]string{true: " !"}[m.Invert], m.ProbabilityFloat())
		case nf.StatisticNth:
			fmt.Fprintf(b, " statistic mode nth%s every %d", map[bool]string{true: " !"}[m.Invert], m.Every)
			if m.Packet != 0 {
				fmt.Fprintf(b, " packet %d", m.Packet)
			}
		}
	case *nf.Recent:
		if m.Invert {
			b.WriteString(" !")
		}
		b.WriteString(" recent:")
		b.WriteString(map[nf.RecentCommand]string{nf.RecentSet: " SET", nf.RecentCheck: " CHECK", nf.RecentUpdate: " UPDATE", nf.RecentRemove: " REMOVE"}[m.Command])
		if m.Seconds != 0 {
			fmt.Fprintf(b, " seconds: %d", m.Seconds)
		}
		if m.Reap {
			b.WriteString(" reap")
		}
		if m.Hitcount != 0 {
			fmt.Fprintf(b, " hit_count: %d", m.Hitcount)
		}
		if m.RTTL {
			b.WriteString(" TTL-Match")
		}
		name := m.Name
		if name == "" {
			name = "DEFAULT"
		}
		b.WriteString(" name: " + name)
		if m.Dest {
			b.WriteString(" side: dest")
		} else {
			b.WriteString(" side: source")
		}
		mask := "255.255.255.255"
		if m.Mask.IsValid() {
			mask = m.Mask.String()
		}
		if m.Mask.Is6() {
			break
		}
		b.WriteString(" mask: " + mask)
	case *nf.AddrTypeMatch:
		b.WriteString(" ADDRTYPE match")
		if m.SrcType != 0 {
			b.WriteString(" src-type " + inv(m.SrcInvert) + strings.Join(m.SrcType.Names(), ","))
		}
		if m.DstType != 0 {
			b.WriteString(" dst-type " + inv(m.DstInvert) + strings.Join(m.DstType.Names(), ","))
		}
		if m.LimitIfaceIn {
			b.WriteString(" limit-in")
		}
		if m.LimitIfaceOut {
			b.WriteString(" limit-out")
		}
	case *nf.SetMatch:
		b.WriteString(" ")
		if m.Invert {
			b.WriteString("! ")
		}
		b.WriteString("match-set " + m.Name + " " + strings.Join(m.Dirs, ","))
		if m.ReturnNomatch {
			b.WriteString(" return-nomatch")
		}
		if m.NoUpdateCounters {
			b.WriteString(" ! update-counters")
		}
		if m.NoUpdateSubcounter {
			b.WriteString(" ! update-subcounters")
		}
	case *nf.NFAcct:
		b.WriteString(" nfacct-name  " + m.Name)
	case *nf.Limit:
		b.WriteString(" limit: avg")
		writeRate(b, m.Avg)
		burst := m.Burst
		if burst == 0 {
			burst = 5
		}
		fmt.Fprintf(b, " burst %d", burst)
	case *nf.ICMP:
		if m.V6 {
			b.WriteString(" ipv6-icmp")
		} else {
			b.WriteString(" icmp")
		}
		if m.Any {
			b.WriteString(" any")
			break
		}
		if m.Invert {
			b.WriteString(" !")
		}
		fmt.Fprintf(b, "type %d", m.Type)
		if m.CodeMin == m.CodeMax {
			fmt.Fprintf(b, " code %d", m.CodeMin)
		} else if m.CodeMin != 0 || m.CodeMax != 0xff {
			fmt.Fprintf(b, " codes %d-%d", m.CodeMin, m.CodeMax)
		}
	case *nf.Physdev:
		b.WriteString(" PHYSDEV match")
		if m.In.Name != "" {
			b.WriteString(" " + inv(m.In.Invert) + "--physdev-in " + m.In.Name)
		}
		if m.Out.Name != "" {
			b.WriteString(" " + inv(m.Out.Invert) + "--physdev-out " + m.Out.Name)
		}
		if m.IsIn {
			b.WriteString(" " + inv(m.IsInInv) + "--physdev-is-in")
		}
		if m.IsOut {
			b.WriteString(" " + inv(m.IsOutInv) + "--physdev-is-out")
		}
		if m.IsBridged {
			b.WriteString(" " + inv(m.IsBrInv) + "--physdev-is-bridged")
		}
	default:
		// Modules knet does not type: their iptables-save words (not the exact -L text).
		b.WriteString(" " + m.Module())
		if o, ok := m.(*nf.Opaque); ok && len(o.Args) > 0 {
			b.WriteString(" " + strings.Join(o.Args, " "))
		}
	}
}

func writeMarkValue(b *strings.Builder, v, mask uint32) {
	if mask != 0xffffffff {
		fmt.Fprintf(b, " 0x%x/0x%x", v, mask)
	} else {
		fmt.Fprintf(b, " 0x%x", v)
	}
}

// writeRate is libxt_limit print_rate.
func writeRate(b *strings.Builder, period uint32) {
	const scale = 10000
	rates := []struct {
		name string
		mult uint32
	}{{"day", scale * 24 * 60 * 60}, {"hour", scale * 60 * 60}, {"min", scale * 60}, {"sec", scale}}
	if period == 0 {
		fmt.Fprintf(b, " %f", math.Inf(1))
		return
	}
	i := 1
	for ; i < len(rates); i++ {
		if period > rates[i].mult || rates[i].mult/period < rates[i].mult%period {
			break
		}
	}
	fmt.Fprintf(b, " %d/%s", rates[i-1].mult/period, rates[i-1].name)
}

func natRange(r nf.NATRange) string {
	var s string
	if r.HasAddr() {
		s = r.MinAddr.String()
		if r.MaxAddr.IsValid() && r.MaxAddr != r.MinAddr {
			s += "-" + r.MaxAddr.String()
		}
	}
	if r.HasPorts() {
		s += fmt.Sprintf(":%d", r.MinPort)
		if r.MaxPort != r.MinPort && r.MaxPort != 0 {
			s += fmt.Sprintf("-%d", r.MaxPort)
		}
	}
	return s
}

func writeTarget(b *strings.Builder, t nf.Target) {
	switch t := t.(type) {
	case nil, *nf.Verdict, *nf.Jump:
	case *nf.DNAT:
		b.WriteString(" to:" + natRange(t.To))
		if t.Random {
			b.WriteString(" random")
		}
		if t.Persistent {
			b.WriteString(" persistent")
		}
	case *nf.SNAT:
		b.WriteString(" to:" + natRange(t.To))
		if t.Random {
			b.WriteString(" random")
		}
		if t.RandomFully {
			b.WriteString(" random-fully")
		}
		if t.Persistent {
			b.WriteString(" persistent")
		}
	case *nf.Masquerade:
		if t.MinPort != 0 || t.MaxPort != 0 {
			fmt.Fprintf(b, " masq ports: %d", t.MinPort)
			if t.MaxPort != t.MinPort && t.MaxPort != 0 {
				fmt.Fprintf(b, "-%d", t.MaxPort)
			}
		}
		if t.Random {
			b.WriteString(" random")
		}
		if t.RandomFully {
			b.WriteString(" random-fully")
		}
	case *nf.Redirect:
		if t.MinPort != 0 {
			fmt.Fprintf(b, " redir ports %d", t.MinPort)
			if t.MaxPort != t.MinPort && t.MaxPort != 0 {
				fmt.Fprintf(b, "-%d", t.MaxPort)
			}
		}
		if t.Random {
			b.WriteString(" random")
		}
	case *nf.MarkTarget:
		switch {
		case t.Value == 0:
			fmt.Fprintf(b, " MARK and 0x%x", ^t.Mask)
		case t.Value == t.Mask:
			fmt.Fprintf(b, " MARK or 0x%x", t.Value)
		case t.Mask == 0:
			fmt.Fprintf(b, " MARK xor 0x%x", t.Value)
		case t.Mask == 0xffffffff:
			fmt.Fprintf(b, " MARK set 0x%x", t.Value)
		default:
			fmt.Fprintf(b, " MARK xset 0x%x/0x%x", t.Value, t.Mask)
		}
	case *nf.Reject:
		with := t.With
		if with == "" {
			with = "icmp-port-unreachable"
		}
		b.WriteString(" reject-with " + with)
	case *nf.Log:
		flags := 0
		for _, fl := range t.Flags {
			flags |= map[string]int{"--log-tcp-sequence": 1, "--log-tcp-options": 2, "--log-ip-options": 4, "--log-uid": 8, "--log-macdecode": 0x20}[fl]
		}
		fmt.Fprintf(b, " LOG flags %d level %d", flags, t.Level)
		if t.Prefix != "" {
			fmt.Fprintf(b, " prefix \"%s\"", t.Prefix)
		}
	case *nf.OpaqueTarget:
		if len(t.Args) > 0 {
			b.WriteString(" " + strings.Join(t.Args, " "))
		}
	}
}
