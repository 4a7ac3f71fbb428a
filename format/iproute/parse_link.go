package iproute

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/dataplane/route"
)

var kindWords = map[string]route.LinkKind{"veth": route.KindVeth, "bridge": route.KindBridge,
	"dummy": route.KindDummy, "ipip": route.KindIPIP, "vxlan": route.KindVXLAN}

// ParseAddrs reads `ip [-d] [-4|-6] [-o] addr` or `ip [-d] [-o] link` output into s:
// links (appended in order) and their addresses, exactly as printed (no automatic routes).
// `-o` lines are recognised by their backslashes. Lines it cannot place are reported.
func ParseAddrs(s *route.Stack, file string, data []byte) Problems {
	p := &parser{file: file, s: s}
	var cur *route.Link
	var last *route.Addr
	for i, raw := range lines(data) {
		p.line = i + 1
		// -o: one record per line, inner newlines printed as "\".
		for k, ln := range strings.Split(raw, "\\") {
			p.text = raw
			if strings.TrimSpace(ln) == "" {
				continue
			}
			if k == 0 && ln[0] >= '0' && ln[0] <= '9' {
				// "N: name: <...>" (link header) or "N: name    inet ..." (ip -o addr).
				idx, rest, _ := strings.Cut(ln, ":")
				n, err := strconv.Atoi(idx)
				if err != nil {
					p.problem("bad link index %q", idx)
					continue
				}
				rest = strings.TrimPrefix(rest, " ")
				if j := strings.Index(rest, "    inet"); j >= 0 && !strings.Contains(rest[:j], ":") {
					name := rest[:j]
					cur = s.LinkByIndex(n)
					if cur == nil {
						cur = &route.Link{Index: n, Name: name, Group: "default"}
						s.Links = append(s.Links, cur)
					}
					last = p.addr(cur, strings.Fields(rest[j:]))
					continue
				}
				cur = p.linkHeader(n, rest)
				last = nil
				continue
			}
			f := strings.Fields(ln)
			if cur == nil {
				p.problem("line outside a link block")
				continue
			}
			switch {
			case strings.HasPrefix(f[0], "link/"):
				p.linkLine(cur, f)
			case f[0] == "inet" || f[0] == "inet6":
				last = p.addr(cur, f)
			case f[0] == "valid_lft":
				if last == nil {
					p.problem("valid_lft without an address")
					continue
				}
				if len(f) >= 4 {
					last.ValidLft, last.PreferredLft = parseLft(f[1]), parseLft(f[3])
				}
			case f[0] == "altname" && len(f) == 2:
				cur.AltNames = append(cur.AltNames, f[1])
			case f[0] == "bridge_slave":
				p.portLine(cur, f[1:])
			case kindWords[f[0]] != "":
				p.kindLine(cur, kindWords[f[0]], f[1:])
			default:
				p.problem("unknown line in link %s", cur.Name)
			}
		}
	}
	return p.probs
}

func parseLft(s string) uint32 {
	if s == "forever" {
		return route.Forever
	}
	n, _ := strconv.ParseUint(strings.TrimSuffix(s, "sec"), 10, 32)
	return uint32(n)
}

func (p *parser) linkHeader(idx int, rest string) *route.Link {
	nameEnd := strings.Index(rest, ": <")
	if nameEnd < 0 {
		p.problem("link header without ': <FLAGS>'")
		return nil
	}
	l := &route.Link{Index: idx}
	name := rest[:nameEnd]
	if n, peer, ok := strings.Cut(name, "@"); ok {
		l.Name = n
		switch {
		case peer == "NONE":
			l.ParentNone = true
		case strings.HasPrefix(peer, "if"):
			pi, err := strconv.Atoi(peer[2:])
			if err != nil {
				l.Veth = &route.Veth{PeerName: peer}
			} else {
				l.Veth = &route.Veth{PeerIndex: pi, PeerRemote: true}
			}
		default:
			l.Veth = &route.Veth{PeerName: peer}
		}
	} else {
		l.Name = name
	}
	rest = rest[nameEnd+3:]
	flags, rest, ok := strings.Cut(rest, ">")
	if !ok {
		p.problem("unterminated <FLAGS>")
	}
	for _, fl := range strings.Split(flags, ",") {
		if fl == "" {
			continue
		}
		if fl == "M-DOWN" {
			l.ParentDown = true
			continue
		}
		v, ok := route.ParseLinkFlag(fl)
		if !ok {
			p.problem("unknown link flag %q", fl)
		}
		l.Flags |= v
	}
	f := strings.Fields(rest)
	for j := 0; j < len(f); j++ {
		tok := f[j]
		arg := func() string {
			if j+1 < len(f) {
				j++
				return f[j]
			}
			p.problem("%s without a value", tok)
			return ""
		}
		switch tok {
		case "mtu":
			l.MTU = p.num(tok, arg())
		case "qdisc":
			l.Qdisc = arg()
		case "master":
			l.Master = arg()
		case "state":
			l.OperState = route.OperState(arg())
		case "mode":
			arg()
		case "group":
			l.Group = arg()
		case "qlen":
			l.TxQLen = p.num(tok, arg())
		case "link-netns", "link-netnsid":
			p.netns(l, tok, arg())
		default:
			p.problem("unknown link header token %q", tok)
		}
	}
	if existing := p.s.LinkByIndex(idx); existing != nil {
		// `ip link` then `ip addr` of the same node: keep the first, it may hold details.
		return existing
	}
	if l.Kind == "" {
		l.Kind = route.KindDevice
		switch {
		case l.Flags&route.FlagLoopback != 0:
			l.Kind = route.KindLoopback
		case l.Veth != nil && (l.Veth.PeerRemote || l.Veth.PeerName != ""):
			l.Kind = route.KindVeth
		}
	}
	p.s.Links = append(p.s.Links, l)
	return l
}

func (p *parser) netns(l *route.Link, tok, v string) {
	if l.Veth == nil {
		l.Veth = &route.Veth{}
	}
	l.Veth.PeerRemote = true
	if tok == "link-netns" {
		l.Veth.PeerNetNS = v
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.problem("bad link-netnsid %q", v)
	}
	l.Veth.PeerNetNSID = n
}

func (p *parser) details(l *route.Link) *route.Details {
	if l.Details == nil {
		l.Details = &route.Details{}
	}
	return l.Details
}

func (p *parser) linkLine(l *route.Link, f []string) {
	l.LinkType = strings.TrimPrefix(f[0], "link/")
	j := 1
	if l.LinkType == "ipip" {
		if l.Kind == route.KindDevice {
			l.Kind = route.KindIPIP
		}
		if l.IPIP == nil {
			l.IPIP = &route.IPIP{}
		}
		if len(f) >= 4 {
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsUnspecified() {
				l.IPIP.Local = a
			}
			if a, err := netip.ParseAddr(f[3]); err == nil && !a.IsUnspecified() {
				l.IPIP.Remote = a
			}
			j = 4
		}
	} else if l.LinkType != "none" && len(f) >= 4 && f[2] == "brd" {
		m1, err1 := net.ParseMAC(f[1])
		m2, err2 := net.ParseMAC(f[3])
		if err1 != nil || err2 != nil {
			p.problem("bad link address")
		}
		l.HardwareAddr, l.Broadcast = m1, m2
		j = 4
	}
	p.detailTokens(l, f[j:])
}

// detailTokens parses link-netns and the -d fields that may end any detail line.
func (p *parser) detailTokens(l *route.Link, f []string) []string {
	var rest []string
	for j := 0; j < len(f); j++ {
		tok := f[j]
		num := func() int {
			if j+1 < len(f) {
				j++
				n, err := strconv.Atoi(f[j])
				if err != nil {
					p.problem("bad %s value %q", tok, f[j])
				}
				return n
			}
			p.problem("%s without a value", tok)
			return 0
		}
		switch tok {
		case "link-netns", "link-netnsid":
			if j+1 < len(f) {
				j++
				p.netns(l, tok, f[j])
			}
		case "promiscuity":
			p.details(l).Promiscuity = num()
		case "allmulti":
			p.details(l).Allmulti = num()
		case "minmtu":
			p.details(l).MinMTU = num()
		case "maxmtu":
			p.details(l).MaxMTU = num()
		case "addrgenmode":
			if j+1 < len(f) {
				j++
				p.details(l).AddrGenMode = f[j]
			}
		case "numtxqueues":
			p.details(l).NumTxQueues = num()
		case "numrxqueues":
			p.details(l).NumRxQueues = num()
		case "gso_max_size":
			p.details(l).GSOMaxSize = num()
		case "gso_max_segs":
			p.details(l).GSOMaxSegs = num()
		case "tso_max_size":
			p.details(l).TSOMaxSize = num()
		case "tso_max_segs":
			p.details(l).TSOMaxSegs = num()
		case "gro_max_size":
			p.details(l).GROMaxSize = num()
			if j+1 < len(f) {
				p.details(l).TailExtra = strings.Join(f[j+1:], " ")
				return rest
			}
		default:
			if l.Details != nil && l.Details.AddrGenMode != "" {
				p.details(l).TailExtra = strings.Join(f[j:], " ")
				return rest
			}
			rest = append(rest, tok)
		}
	}
	if len(rest) > 0 && l.Details == nil {
		p.problem("unknown link tokens %q", strings.Join(rest, " "))
	}
	return rest
}

// splitTail separates a detail line's kind data from the trailing addrgenmode... fields.
func splitTail(f []string) (data, tail []string) {
	for i, t := range f {
		if t == "addrgenmode" {
			return f[:i], f[i:]
		}
	}
	return f, nil
}

func (p *parser) kindLine(l *route.Link, k route.LinkKind, f []string) {
	l.Kind = k
	data, tail := splitTail(f)
	d := p.details(l)
	var extra []string
	for j := 0; j < len(data); j++ {
		tok := data[j]
		arg := func() string {
			if j+1 < len(data) {
				j++
				return data[j]
			}
			p.problem("%s without a value", tok)
			return ""
		}
		atoi := func() int { return p.num(tok, arg()) }
		switch k {
		case route.KindVXLAN:
			if l.VXLAN == nil {
				l.VXLAN = &route.VXLAN{Learning: true}
			}
			v := l.VXLAN
			switch tok {
			case "id":
				v.VNI = atoi()
			case "local":
				v.Local = p.ip(tok, arg())
			case "dev":
				v.Dev = arg()
			case "srcport":
				v.PortLow = atoi()
				v.PortHigh = atoi()
			case "dstport":
				v.Port = atoi()
			case "nolearning":
				v.Learning = false
			case "ttl":
				if t := arg(); t != "auto" {
					v.TTL = p.num(tok, t)
				}
			case "ageing":
				v.Ageing = atoi()
			default:
				extra = append(extra, data[j:]...)
				j = len(data)
			}
		case route.KindIPIP:
			if l.IPIP == nil {
				l.IPIP = &route.IPIP{}
			}
			t := l.IPIP
			switch tok {
			case "any":
			case "remote":
				if v := arg(); v != "any" {
					t.Remote = p.ip(tok, v)
				}
			case "local":
				if v := arg(); v != "any" {
					t.Local = p.ip(tok, v)
				}
			case "ttl":
				if v := arg(); v != "inherit" {
					t.TTL = p.num(tok, v)
				}
			case "nopmtudisc":
				t.PMTUDisc = false
			case "pmtudisc":
				t.PMTUDisc = true
			default:
				extra = append(extra, data[j:]...)
				j = len(data)
			}
		case route.KindBridge:
			if l.Bridge == nil {
				l.Bridge = &route.Bridge{}
			}
			b := l.Bridge
			switch tok {
			case "forward_delay":
				b.ForwardDelay = atoi()
			case "hello_time":
				b.HelloTime = atoi()
			case "max_age":
				b.MaxAge = atoi()
			case "ageing_time":
				b.AgeingTime = atoi()
			case "stp_state":
				b.STPState = atoi()
			case "priority":
				b.Priority = atoi()
			case "vlan_filtering":
				b.VlanFiltering = atoi()
				extra = append(extra, data[j+1:]...)
				j = len(data)
			default:
				extra = append(extra, data[j:]...)
				j = len(data)
			}
		default:
			extra = append(extra, data[j:]...)
			j = len(data)
		}
	}
	d.KindExtra = joinExtra(extra)
	p.detailTokens(l, tail)
}

func (p *parser) portLine(l *route.Link, f []string) {
	data, tail := splitTail(f)
	bp := &route.BridgePort{}
	l.BridgePort = bp
	on := func(v string) bool { return v == "on" }
	for j := 0; j+1 < len(data); j += 2 {
		k, v := data[j], data[j+1]
		switch k {
		case "state":
			bp.State = v
		case "priority":
			bp.Priority = p.num(k, v)
		case "cost":
			bp.Cost = p.num(k, v)
		case "hairpin":
			bp.Hairpin = on(v)
		case "guard", "root_block", "fastleave":
			if v != "off" {
				p.problem("bridge port %s %s not modelled", k, v)
			}
		case "learning":
			bp.Learning = on(v)
		case "flood":
			bp.Flood = on(v)
			p.details(l).PortExtra = joinExtra(data[j+2:])
			j = len(data)
		default:
			p.details(l).PortExtra = joinExtra(data[j:])
			j = len(data)
		}
	}
	p.detailTokens(l, tail)
}

func (p *parser) addr(l *route.Link, f []string) *route.Addr {
	if len(f) < 2 {
		p.problem("address line without an address")
		return nil
	}
	a := &route.Addr{Dev: l.Name, ValidLft: route.Forever, PreferredLft: route.Forever}
	is4 := f[0] == "inet"
	j := 1
	local := f[1]
	if len(f) > 3 && f[2] == "peer" {
		ap, err := netip.ParseAddr(local)
		pp, err2 := netip.ParsePrefix(f[3])
		if err != nil || err2 != nil {
			p.problem("bad peer address")
			return nil
		}
		a.Prefix = netip.PrefixFrom(ap, pp.Bits())
		a.Peer = pp
		j = 4
	} else {
		pf, err := parsePrefix(local)
		if err != nil {
			p.problem("bad address %q", local)
			return nil
		}
		a.Prefix = pf
		j = 2
	}
	dynamic := false
	for ; j < len(f); j++ {
		tok := f[j]
		arg := func() string {
			if j+1 < len(f) {
				j++
				return f[j]
			}
			p.problem("%s without a value", tok)
			return ""
		}
		switch tok {
		case "brd":
			a.Broadcast = p.ip(tok, arg())
		case "scope":
			sc, err := route.ParseScope(arg())
			if err != nil {
				p.problem("%v", err)
			}
			a.Scope = sc
		case "metric":
			a.Metric = p.num(tok, arg())
		case "proto":
			a.Proto = arg()
		case "dynamic":
			dynamic = true
		case "temporary":
			a.Flags |= route.AddrSecondary
		case "any":
			arg()
			p.problem("anycast address not modelled")
		default:
			if fl, ok := route.ParseAddrFlag(tok); ok {
				a.Flags |= fl
				continue
			}
			if is4 && j == len(f)-1 {
				a.Label = tok
				continue
			}
			p.problem("unknown address token %q", tok)
		}
	}
	if dynamic {
		a.ValidLft, a.PreferredLft = 0, 0 // set by the valid_lft line
	}
	p.s.Addrs = append(p.s.Addrs, a)
	return a
}

// joinExtra rejoins verbatim tokens, restoring iproute2's timer layout ("%4i.%.2i": the
// value after a *_timer key is right-aligned in 7 columns), which splitting on blanks lost.
func joinExtra(f []string) string {
	var b strings.Builder
	for i, t := range f {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i > 0 && strings.HasSuffix(f[i-1], "_timer") {
			t = fmt.Sprintf("%7s", t)
		}
		b.WriteString(t)
	}
	return b.String()
}
