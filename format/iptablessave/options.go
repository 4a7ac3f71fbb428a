package iptablessave

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	nf "github.com/knet-dev/knet/dataplane/netfilter"
)

// tcpFlagNames is libxt_tcp's tcp_flag_names table.
var tcpFlagNames = [...]struct {
	name string
	bit  uint8
}{{"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08}, {"ACK", 0x10}, {"URG", 0x20}, {"ALL", 0x3F}, {"NONE", 0}}

func parseTCPFlags(s string) (uint8, error) {
	var v uint8
	for _, f := range strings.Split(s, ",") {
		found := false
		for _, n := range tcpFlagNames {
			if strings.EqualFold(n.name, f) {
				v |= n.bit
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown TCP flag `%s'", f)
		}
	}
	return v, nil
}

func (p *ruleParser) portOpt(pm *nf.PortMatch, opt string, invert bool) error {
	v, err := p.next(opt)
	if err != nil {
		return err
	}
	r, err := parsePortRange(v)
	if err != nil {
		return err
	}
	*pm = nf.PortMatch{Set: true, Invert: invert, Range: r}
	return nil
}

func (p *ruleParser) ctAddr(a *nf.CTAddr, opt string, invert bool) error {
	v, err := p.next(opt)
	if err != nil {
		return err
	}
	pfx, err := parseAddrPrefix(v, p.fam)
	if err != nil {
		return err
	}
	*a = nf.CTAddr{Set: true, Invert: invert, Prefix: pfx}
	return nil
}

func parseStateList(s string) (nf.CTState, error) {
	var st nf.CTState
	for _, w := range strings.Split(s, ",") {
		x, ok := nf.ParseCTState(w)
		if !ok {
			return 0, fmt.Errorf("bad ctstate \"%s\"", w)
		}
		st |= x
	}
	return st, nil
}

func parseAddrTypes(s string) (nf.AddrType, error) {
	var t nf.AddrType
	for _, w := range strings.Split(s, ",") {
		x, ok := nf.ParseAddrType(strings.ToUpper(w))
		if !ok {
			return 0, fmt.Errorf("addrtype: bad type \"%s\"", w)
		}
		t |= x
	}
	return t, nil
}

func parseIDRange(s string) (uint32, uint32, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if lo == "root" && !isRange {
		return 0, 0, nil
	}
	a, err := strconv.ParseUint(lo, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad owner value \"%s\"", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("bad owner value \"%s\"", s)
		}
	}
	return uint32(a), uint32(b), nil
}

func parseAddrRange(s string, fam nf.Family) (netip.Addr, netip.Addr, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(lo)
	if err != nil || a.Is6() != (fam == nf.IPv6) {
		return a, a, fmt.Errorf("iprange: bad address \"%s\"", lo)
	}
	b := a
	if isRange {
		if b, err = netip.ParseAddr(hi); err != nil || b.Is6() != a.Is6() {
			return a, a, fmt.Errorf("iprange: bad address \"%s\"", hi)
		}
	}
	return a, b, nil
}

// matchOption applies option opt to match m. It reports false if m has no such option.
func (p *ruleParser) matchOption(m nf.Match, opt string, inv bool) (bool, error) {
	switch m := m.(type) {
	case *nf.TCP:
		switch opt {
		case "--sport", "--source-port":
			return true, p.portOpt(&m.SPort, opt, inv)
		case "--dport", "--destination-port":
			return true, p.portOpt(&m.DPort, opt, inv)
		case "--syn":
			m.FlagsSet, m.FlagsInvert = true, inv
			m.FlagsMask = nf.TCPFlagFIN | nf.TCPFlagSYN | nf.TCPFlagRST | nf.TCPFlagACK
			m.FlagsComp = nf.TCPFlagSYN
			return true, nil
		case "--tcp-flags":
			a, err := p.next(opt)
			if err != nil {
				return true, err
			}
			b, err := p.next(opt)
			if err != nil {
				return true, err
			}
			mask, err := parseTCPFlags(a)
			if err != nil {
				return true, err
			}
			comp, err := parseTCPFlags(b)
			if err != nil {
				return true, err
			}
			m.FlagsSet, m.FlagsInvert, m.FlagsMask, m.FlagsComp = true, inv, mask, comp
			return true, nil
		case "--tcp-option":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 255)
			if err != nil {
				return true, err
			}
			m.OptionSet, m.OptionInvert, m.Option = true, inv, uint8(n)
			return true, nil
		}
	case *nf.UDP:
		switch opt {
		case "--sport", "--source-port":
			return true, p.portOpt(&m.SPort, opt, inv)
		case "--dport", "--destination-port":
			return true, p.portOpt(&m.DPort, opt, inv)
		}
	case *nf.SCTP:
		switch opt {
		case "--sport", "--source-port":
			return true, p.portOpt(&m.SPort, opt, inv)
		case "--dport", "--destination-port":
			return true, p.portOpt(&m.DPort, opt, inv)
		case "--chunk-types":
			a, err := p.next(opt)
			if err != nil {
				return true, err
			}
			b, err := p.next(opt)
			if err != nil {
				return true, err
			}
			if inv {
				m.Chunks = append(m.Chunks, "!")
			}
			m.Chunks = append(m.Chunks, opt, a, b)
			return true, nil
		}
	case *nf.Multiport:
		var dir nf.MultiportDir
		switch opt {
		case "--sports", "--source-ports":
			dir = nf.MultiportSource
		case "--dports", "--destination-ports":
			dir = nf.MultiportDest
		case "--ports":
			dir = nf.MultiportBoth
		default:
			return false, nil
		}
		if m.Dir != "" {
			return true, fmt.Errorf("multiport can only have one option")
		}
		if p.rule != nil && (!portProto(p.rule.Proto)) {
			return true, fmt.Errorf("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'")
		}
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		m.Dir, m.Invert = dir, inv
		n := 0
		for _, w := range strings.Split(v, ",") {
			r, err := parsePortRange(w)
			if err != nil {
				return true, err
			}
			m.Ports = append(m.Ports, r)
			n++
			if r.Lo != r.Hi {
				n++
			}
		}
		if n > 15 {
			return true, fmt.Errorf("too many ports specified")
		}
		return true, nil
	case *nf.Comment:
		if opt == "--comment" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			if inv {
				return true, fmt.Errorf("comment: unexpected `!'")
			}
			m.Text = v
			return true, nil
		}
	case *nf.Mark:
		if opt == "--mark" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			val, mask, _, err := parseMarkMask(v)
			m.Value, m.Mask, m.Invert = val, mask, inv
			return true, err
		}
	case *nf.Connmark:
		if opt == "--mark" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			val, mask, _, err := parseMarkMask(v)
			m.Value, m.Mask, m.Invert = val, mask, inv
			return true, err
		}
	case *nf.Conntrack:
		return p.conntrackOption(m, opt, inv)
	case *nf.State:
		if opt == "--state" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			st, err := parseStateList(v)
			m.States, m.Invert = st, inv
			return true, err
		}
	case *nf.Statistic:
		switch opt {
		case "--mode":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			switch v {
			case "random":
				m.Mode = nf.StatisticRandom
			case "nth":
				m.Mode = nf.StatisticNth
			default:
				return true, fmt.Errorf("statistic: bad mode \"%s\"", v)
			}
			return true, nil
		case "--probability":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			m.Probability, err = parseProbability(v)
			m.Invert = m.Invert || inv
			return true, err
		case "--every":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 1<<32-1)
			if err == nil && n == 0 {
				err = fmt.Errorf("statistic: --every must be at least 1")
			}
			m.Every, m.Invert = uint32(n), m.Invert || inv
			return true, err
		case "--packet":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 1<<32-1)
			m.Packet = uint32(n)
			return true, err
		}
	case *nf.Recent:
		switch opt {
		case "--set", "--rcheck", "--update", "--remove":
			if m.Command != "" {
				return true, fmt.Errorf("recent: only one of `--set', `--rcheck' `--update' or `--remove' may be set")
			}
			m.Command, m.Invert = nf.RecentCommand(opt), inv
			return true, nil
		case "--seconds", "--hitcount":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 1<<32-1)
			if opt == "--seconds" {
				m.Seconds = uint32(n)
			} else {
				m.Hitcount = uint32(n)
			}
			return true, err
		case "--reap":
			m.Reap = true
			return true, nil
		case "--rttl":
			m.RTTL = true
			return true, nil
		case "--name":
			v, err := p.next(opt)
			m.Name = v
			return true, err
		case "--mask":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			a, err := netip.ParseAddr(v)
			if err != nil || a.Is6() != (p.fam == nf.IPv6) {
				return true, fmt.Errorf("recent: bad mask \"%s\"", v)
			}
			m.Mask = a
			return true, nil
		case "--rsource":
			m.Dest = false
			return true, nil
		case "--rdest":
			m.Dest = true
			return true, nil
		}
	case *nf.AddrTypeMatch:
		switch opt {
		case "--src-type", "--dst-type":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			t, err := parseAddrTypes(v)
			if opt == "--src-type" {
				m.SrcType, m.SrcInvert = t, inv
			} else {
				m.DstType, m.DstInvert = t, inv
			}
			return true, err
		case "--limit-iface-in":
			m.LimitIfaceIn = true
			return true, nil
		case "--limit-iface-out":
			m.LimitIfaceOut = true
			return true, nil
		}
	case *nf.SetMatch:
		switch opt {
		case "--match-set", "--set":
			name, err := p.next(opt)
			if err != nil {
				return true, err
			}
			dirs, err := p.next(opt)
			if err != nil {
				return true, err
			}
			m.Name, m.Invert, m.Dirs = name, inv, nil
			for _, d := range strings.Split(dirs, ",") {
				if d != "src" && d != "dst" {
					return true, fmt.Errorf("set: bad flag \"%s\"", d)
				}
				m.Dirs = append(m.Dirs, d)
			}
			return true, nil
		case "--return-nomatch":
			m.ReturnNomatch = true
			return true, nil
		case "--update-counters":
			m.NoUpdateCounters = inv
			return true, nil
		case "--update-subcounters":
			m.NoUpdateSubcounter = inv
			return true, nil
		case "--packets-eq", "--packets-lt", "--packets-gt", "--bytes-eq", "--bytes-lt", "--bytes-gt":
			v, err := p.next(opt)
			if inv {
				m.Extra = append(m.Extra, "!")
			}
			m.Extra = append(m.Extra, opt, v)
			return true, err
		}
	case *nf.Physdev:
		switch opt {
		case "--physdev-in", "--physdev-out":
			v, err := p.next(opt)
			if opt == "--physdev-in" {
				m.In = nf.IfaceMatch{Name: v, Invert: inv}
			} else {
				m.Out = nf.IfaceMatch{Name: v, Invert: inv}
			}
			return true, err
		case "--physdev-is-in":
			m.IsIn, m.IsInInv = true, inv
			return true, nil
		case "--physdev-is-out":
			m.IsOut, m.IsOutInv = true, inv
			return true, nil
		case "--physdev-is-bridged":
			m.IsBridged, m.IsBrInv = true, inv
			return true, nil
		}
	case *nf.IPRange:
		switch opt {
		case "--src-range", "--dst-range":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			a, b, err := parseAddrRange(v, p.fam)
			if opt == "--src-range" {
				m.SrcLo, m.SrcHi, m.SrcInvert = a, b, inv
			} else {
				m.DstLo, m.DstHi, m.DstInvert = a, b, inv
			}
			return true, err
		}
	case *nf.Limit:
		switch opt {
		case "--limit":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			m.Avg, err = parseRate(v)
			return true, err
		case "--limit-burst":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 10000)
			m.Burst = uint32(n)
			return true, err
		}
	case *nf.NFAcct:
		if opt == "--nfacct-name" {
			v, err := p.next(opt)
			m.Name = v
			return true, err
		}
	case *nf.Owner:
		switch opt {
		case "--uid-owner", "--gid-owner":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			lo, hi, err := parseIDRange(v)
			if opt == "--uid-owner" {
				m.UIDSet, m.UIDInvert, m.UIDMin, m.UIDMax = true, inv, lo, hi
			} else {
				m.GIDSet, m.GIDInvert, m.GIDMin, m.GIDMax = true, inv, lo, hi
			}
			return true, err
		case "--socket-exists":
			m.SocketExists, m.SocketInv = true, inv
			return true, nil
		}
	case *nf.ICMP:
		if (!m.V6 && opt == "--icmp-type") || (m.V6 && opt == "--icmpv6-type") {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			x, err := parseICMPType(v, m.V6)
			x.Invert = inv
			*m = x
			return true, err
		}
	case *nf.MAC:
		if opt == "--mac-source" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			hw, err := net.ParseMAC(v)
			if err != nil || len(hw) != 6 {
				return true, fmt.Errorf("bad mac address \"%s\"", v)
			}
			copy(m.Addr[:], hw)
			m.Invert = inv
			return true, nil
		}
	case *nf.Length:
		if opt == "--length" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			r, err := parsePortRange(v)
			m.Min, m.Max, m.Invert = r.Lo, r.Hi, inv
			return true, err
		}
	}
	return false, nil
}

func (p *ruleParser) conntrackOption(m *nf.Conntrack, opt string, inv bool) (bool, error) {
	switch opt {
	case "--ctstate":
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		st, err := parseStateList(v)
		m.StateSet, m.StateInvert, m.State = true, inv, st
		return true, err
	case "--ctproto":
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		n, ok := nf.ProtoNumber(strings.ToLower(v))
		if !ok {
			return true, fmt.Errorf("unknown protocol \"%s\" specified", v)
		}
		m.ProtoSet, m.ProtoInvert, m.Proto = true, inv, n
		return true, nil
	case "--ctorigsrc":
		return true, p.ctAddr(&m.OrigSrc, opt, inv)
	case "--ctorigdst":
		return true, p.ctAddr(&m.OrigDst, opt, inv)
	case "--ctreplsrc":
		return true, p.ctAddr(&m.ReplSrc, opt, inv)
	case "--ctrepldst":
		return true, p.ctAddr(&m.ReplDst, opt, inv)
	case "--ctorigsrcport":
		return true, p.portOpt(&m.OrigSrcPort, opt, inv)
	case "--ctorigdstport":
		return true, p.portOpt(&m.OrigDstPort, opt, inv)
	case "--ctreplsrcport":
		return true, p.portOpt(&m.ReplSrcPort, opt, inv)
	case "--ctrepldstport":
		return true, p.portOpt(&m.ReplDstPort, opt, inv)
	case "--ctstatus":
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		var st nf.CTStatus
		for _, w := range strings.Split(v, ",") {
			x, ok := nf.ParseCTStatus(w)
			if !ok {
				return true, fmt.Errorf("bad ctstatus \"%s\"", w)
			}
			st |= x
		}
		m.StatusSet, m.StatusInvert, m.Status = true, inv, st
		return true, nil
	case "--ctexpire":
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		lo, hi, isRange := strings.Cut(v, ":")
		a, err := parseUint(lo, 1<<32-1)
		if err != nil {
			return true, err
		}
		b := a
		if isRange {
			if b, err = parseUint(hi, 1<<32-1); err != nil {
				return true, err
			}
		}
		m.ExpireSet, m.ExpireInvert, m.ExpireMin, m.ExpireMax = true, inv, uint32(a), uint32(b)
		return true, nil
	case "--ctdir":
		v, err := p.next(opt)
		if err != nil {
			return true, err
		}
		switch strings.ToUpper(v) {
		case "ORIGINAL", "REPLY":
			m.Dir = strings.ToUpper(v)
		default:
			return true, fmt.Errorf("conntrack: bad direction \"%s\"", v)
		}
		return true, nil
	}
	return false, nil
}

// targetOption applies option opt to the rule's target.
func (p *ruleParser) targetOption(r *nf.Rule, opt string, inv bool) (bool, error) {
	if inv {
		switch r.Target.(type) {
		case *nf.Verdict, *nf.Jump:
			return false, nil
		}
	}
	switch t := r.Target.(type) {
	case *nf.Reject:
		if opt == "--reject-with" {
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			name, ok := rejectName(p.fam, v)
			if !ok {
				return true, fmt.Errorf("unknown reject type \"%s\"", v)
			}
			t.With = name
			return true, nil
		}
	case *nf.DNAT:
		switch opt {
		case "--to-destination", "--to":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			if t.To.HasAddr() || t.To.HasPorts() {
				return true, fmt.Errorf("DNAT: multiple --to-destination not supported")
			}
			t.To, err = parseNATRange(v, p.fam)
			return true, err
		case "--random":
			t.Random = true
			return true, nil
		case "--persistent":
			t.Persistent = true
			return true, nil
		}
	case *nf.SNAT:
		switch opt {
		case "--to-source", "--to":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			t.To, err = parseNATRange(v, p.fam)
			return true, err
		case "--random":
			t.Random = true
			return true, nil
		case "--random-fully":
			t.RandomFully = true
			return true, nil
		case "--persistent":
			t.Persistent = true
			return true, nil
		}
	case *nf.Masquerade:
		switch opt {
		case "--to-ports":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			t.MinPort, t.MaxPort, err = parsePortsDash(v)
			return true, err
		case "--random":
			t.Random = true
			return true, nil
		case "--random-fully":
			t.RandomFully = true
			return true, nil
		}
	case *nf.Redirect:
		switch opt {
		case "--to-ports":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			t.MinPort, t.MaxPort, err = parsePortsDash(v)
			return true, err
		case "--random":
			t.Random = true
			return true, nil
		}
	case *nf.MarkTarget:
		switch opt {
		case "--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			val, mask, hasMask, err := parseMarkMask(v)
			if err != nil {
				return true, err
			}
			if hasMask && opt != "--set-xmark" && opt != "--set-mark" {
				return true, fmt.Errorf("MARK: %s does not take a mask", opt)
			}
			t.Value, t.Mask = markOp(opt, val, mask)
			return true, nil
		}
	case *nf.ConnmarkTarget:
		switch opt {
		case "--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			val, mask, _, err := parseMarkMask(v)
			if err != nil {
				return true, err
			}
			t.Mode = nf.ConnmarkSet
			t.Value, t.Mask = markOp(opt, val, mask)
			return true, nil
		case "--save-mark", "--restore-mark":
			if opt == "--save-mark" {
				t.Mode = nf.ConnmarkSave
			} else {
				t.Mode = nf.ConnmarkRestore
			}
			if t.NfMask == 0 && t.CtMask == 0 {
				t.NfMask, t.CtMask = 0xffffffff, 0xffffffff
			}
			return true, nil
		case "--nfmask", "--ctmask", "--mask":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			x, err := parseUint32Any(v)
			if err != nil {
				return true, err
			}
			switch opt {
			case "--nfmask":
				t.NfMask = x
			case "--ctmask":
				t.CtMask = x
			default:
				t.NfMask, t.CtMask = x, x
			}
			return true, nil
		}
	case *nf.Log:
		switch opt {
		case "--log-prefix":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			if len(v) > 29 {
				return true, fmt.Errorf("maximum prefix length 29 for --log-prefix")
			}
			t.Prefix = v
			return true, nil
		case "--log-level":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			t.Level, err = parseLogLevel(v)
			return true, err
		case "--log-tcp-sequence", "--log-tcp-options", "--log-ip-options", "--log-uid", "--log-macdecode":
			t.Flags = append(t.Flags, opt)
			return true, nil
		}
	case *nf.NFLog:
		switch opt {
		case "--nflog-prefix":
			v, err := p.next(opt)
			t.Prefix = v
			return true, err
		case "--nflog-group", "--nflog-threshold":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 65535)
			if opt == "--nflog-group" {
				t.Group = uint16(n)
			} else {
				t.Threshold = uint16(n)
			}
			return true, err
		case "--nflog-size", "--nflog-range":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 1<<32-1)
			t.Size, t.SizeSet = uint32(n), true
			return true, err
		}
	case *nf.CT:
		switch opt {
		case "--notrack":
			t.Notrack = true
			return true, nil
		case "--zone":
			v, err := p.next(opt)
			if err != nil {
				return true, err
			}
			n, err := parseUint(v, 65535)
			t.Zone = uint16(n)
			return true, err
		case "--helper":
			v, err := p.next(opt)
			t.Helper = v
			return true, err
		}
		if strings.HasPrefix(opt, "--") {
			t.Extra = append(t.Extra, opt)
			for p.i < len(p.toks) && !isOptionWord(p.toks[p.i]) {
				t.Extra = append(t.Extra, p.raw(p.i))
				p.i++
			}
			return true, nil
		}
	}
	return false, nil
}

// markOp converts a MARK/CONNMARK operation to the kernel's (value, mask) pair
// (libxt_MARK mark_tg_parse / libxt_CONNMARK connmark_tg_parse).
func markOp(opt string, val, mask uint32) (uint32, uint32) {
	switch opt {
	case "--set-xmark":
		return val, mask
	case "--set-mark":
		return val, val | mask
	case "--and-mark":
		return 0, ^val
	case "--or-mark":
		return val, val
	default: // --xor-mark
		return val, 0
	}
}
