package iproute

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/knet-dev/knet/dataplane/route"
)

// PrintLinks prints `ip [-d] [-o] link [show dev X]`.
func PrintLinks(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	lw := &lineWriter{w: bw, oneline: o.Oneline}
	found := false
	for _, l := range s.Links {
		if o.Dev != "" && l.Name != o.Dev {
			continue
		}
		found = true
		lw.record(linkHeader(s, l, true) + "\n" + linkLine(s, l, o) + "\n")
	}
	if o.Dev != "" && !found {
		return fmt.Errorf("device %q does not exist", o.Dev)
	}
	return bw.Flush()
}

// PrintAddrs prints `ip [-d] [-4|-6] [-o] addr [show dev X]`.
func PrintAddrs(w io.Writer, s *route.Stack, o Options) error {
	bw := bufio.NewWriter(w)
	found := false
	for _, l := range s.Links {
		if o.Dev != "" && l.Name != o.Dev {
			continue
		}
		found = true
		var addrs []*route.Addr
		for _, a := range s.Addrs {
			if a.Dev != l.Name || o.Family == Family4 && !a.Prefix.Addr().Is4() || o.Family == Family6 && a.Prefix.Addr().Is4() {
				continue
			}
			addrs = append(addrs, a)
		}
		// IPv4 addresses are dumped before IPv6 ones.
		var sorted []*route.Addr
		for _, a := range addrs {
			if a.Prefix.Addr().Is4() {
				sorted = append(sorted, a)
			}
		}
		for _, a := range addrs {
			if !a.Prefix.Addr().Is4() {
				sorted = append(sorted, a)
			}
		}
		if o.Oneline {
			for _, a := range sorted {
				bw.WriteString(fmt.Sprintf("%d: %s", l.Index, l.Name) + strings.ReplaceAll(strings.TrimSuffix(addrLines(a, o), "\n"), "\n", "\\") + "\n")
			}
			continue
		}
		if o.Family != FamilyAll && len(sorted) == 0 {
			continue
		}
		var b strings.Builder
		b.WriteString(linkHeader(s, l, false))
		if o.Family == FamilyAll || o.Details {
			b.WriteString("\n" + linkLine(s, l, o))
		} else {
			b.WriteString(netnsSuffix(l))
		}
		b.WriteString("\n")
		for _, a := range sorted {
			b.WriteString(addrLines(a, o))
		}
		bw.WriteString(b.String())
	}
	if o.Dev != "" && !found {
		return fmt.Errorf("device %q does not exist", o.Dev)
	}
	return bw.Flush()
}

// LinkName returns NAME[@PEER] as the first line prints it.
func LinkName(l *route.Link) string {
	switch {
	case l.ParentNone:
		return l.Name + "@NONE"
	case l.Veth != nil && l.Veth.PeerRemote:
		return fmt.Sprintf("%s@if%d", l.Name, l.Veth.PeerIndex)
	case l.Veth != nil && l.Veth.PeerName != "":
		return l.Name + "@" + l.Veth.PeerName
	}
	return l.Name
}

func linkHeader(s *route.Stack, l *route.Link, linkCmd bool) string {
	var b strings.Builder
	flags := l.Flags.String()
	// ",M-DOWN" when the IFLA_LINK device (a same-namespace veth peer) is down.
	mdown := l.ParentDown
	if l.Veth != nil && !l.Veth.PeerRemote && l.Veth.PeerName != "" {
		if p := s.LinkByName(l.Veth.PeerName); p != nil {
			mdown = !p.Up()
		}
	}
	if mdown {
		flags += ",M-DOWN"
	}
	fmt.Fprintf(&b, "%d: %s: <%s> mtu %d qdisc %s ", l.Index, LinkName(l), flags, l.MTU, l.Qdisc)
	if l.Master != "" {
		fmt.Fprintf(&b, "master %s ", l.Master)
	}
	fmt.Fprintf(&b, "state %s ", l.OperState)
	if linkCmd {
		b.WriteString("mode DEFAULT ")
	}
	fmt.Fprintf(&b, "group %s", l.Group)
	if l.TxQLen > 0 {
		fmt.Fprintf(&b, " qlen %d", l.TxQLen)
	}
	return b.String()
}

func netnsSuffix(l *route.Link) string {
	if l.Veth == nil || !l.Veth.PeerRemote {
		return ""
	}
	if l.Veth.PeerNetNS != "" {
		return " link-netns " + l.Veth.PeerNetNS
	}
	return fmt.Sprintf(" link-netnsid %d", l.Veth.PeerNetNSID)
}

func linkLine(s *route.Stack, l *route.Link, o Options) string {
	var b strings.Builder
	b.WriteString("    link/" + l.LinkType)
	switch {
	case l.LinkType == "ipip":
		local, remote := "0.0.0.0", "0.0.0.0"
		if l.IPIP != nil && l.IPIP.Local.IsValid() {
			local = l.IPIP.Local.String()
		}
		if l.IPIP != nil && l.IPIP.Remote.IsValid() {
			remote = l.IPIP.Remote.String()
		}
		if l.Flags&route.FlagPointToPoint != 0 {
			fmt.Fprintf(&b, " %s peer %s", local, remote)
		} else {
			fmt.Fprintf(&b, " %s brd %s", local, remote)
		}
	case l.LinkType == "none":
		b.WriteString(" ")
	default:
		fmt.Fprintf(&b, " %s brd %s", l.HardwareAddr, l.Broadcast)
	}
	b.WriteString(netnsSuffix(l))
	if o.Details {
		d := l.Details
		if d == nil {
			d = DefaultDetails(l.Kind, 1)
		}
		fmt.Fprintf(&b, " promiscuity %d ", d.Promiscuity)
		if o.atLeast(6, 0) {
			fmt.Fprintf(&b, " allmulti %d ", d.Allmulti)
		}
		fmt.Fprintf(&b, "minmtu %d maxmtu %d ", d.MinMTU, d.MaxMTU)
		if l.Kind != route.KindDevice && l.Kind != route.KindLoopback {
			b.WriteString("\n    " + string(l.Kind) + " " + kindData(s, l, d, o))
		}
		if l.BridgePort != nil {
			b.WriteString("\n    bridge_slave " + portData(s, l, d))
		}
		fmt.Fprintf(&b, "addrgenmode %s numtxqueues %d numrxqueues %d gso_max_size %d gso_max_segs %d ",
			d.AddrGenMode, d.NumTxQueues, d.NumRxQueues, d.GSOMaxSize, d.GSOMaxSegs)
		if o.atLeast(6, 0) {
			fmt.Fprintf(&b, "tso_max_size %d tso_max_segs %d gro_max_size %d ", d.TSOMaxSize, d.TSOMaxSegs, d.GROMaxSize)
		}
		if d.TailExtra != "" {
			b.WriteString(d.TailExtra + " ")
		}
	}
	for _, a := range l.AltNames {
		b.WriteString("\n    altname " + a)
	}
	return b.String()
}

// DefaultDetails returns what Linux 6.1 reports in `ip -d link` for a new link of kind k on
// a machine with cpus possible CPUs (veth gets one queue per CPU).
func DefaultDetails(k route.LinkKind, cpus int) *route.Details {
	d := &route.Details{MinMTU: 68, MaxMTU: 65535, AddrGenMode: "eui64", NumTxQueues: 1, NumRxQueues: 1,
		GSOMaxSize: 65536, GSOMaxSegs: 65535, TSOMaxSize: 524280, TSOMaxSegs: 65535, GROMaxSize: 65536}
	switch k {
	case route.KindLoopback, route.KindDummy:
		d.MinMTU, d.MaxMTU = 0, 0
	case route.KindVeth:
		d.NumTxQueues, d.NumRxQueues = max(cpus, 1), max(cpus, 1)
	case route.KindIPIP:
		d.MaxMTU = 65515
		d.TSOMaxSize = 65536
	case route.KindDevice:
		d.TSOMaxSize = 65536
	}
	return d
}

func kindData(s *route.Stack, l *route.Link, d *route.Details, o Options) string {
	var b strings.Builder
	tok := func(f string, a ...any) { fmt.Fprintf(&b, f, a...); b.WriteByte(' ') }
	switch l.Kind {
	case route.KindVXLAN:
		v := l.VXLAN
		if v == nil {
			v = &route.VXLAN{}
		}
		tok("id %d", v.VNI)
		if v.Local.IsValid() {
			tok("local %s", v.Local)
		}
		if v.Dev != "" {
			tok("dev %s", v.Dev)
		}
		tok("srcport %d %d", v.PortLow, v.PortHigh)
		tok("dstport %d", v.Port)
		ttl := "auto"
		if v.TTL != 0 {
			ttl = fmt.Sprint(v.TTL)
		}
		if !v.Learning {
			tok("nolearning")
		}
		tok("ttl %s", ttl)
		tok("ageing %d", v.Ageing)
		if d.KindExtra != "" {
			tok("%s", d.KindExtra)
		} else {
			tok("udpcsum noudp6zerocsumtx noudp6zerocsumrx")
		}
	case route.KindIPIP:
		t := l.IPIP
		if t == nil {
			t = &route.IPIP{}
		}
		any := func(a interface{ IsValid() bool }, s string) string {
			if !a.IsValid() {
				return "any"
			}
			return s
		}
		tok("any remote %s local %s", any(t.Remote, t.Remote.String()), any(t.Local, t.Local.String()))
		if t.TTL == 0 {
			tok("ttl inherit")
		} else {
			tok("ttl %d", t.TTL)
		}
		if !t.PMTUDisc {
			tok("nopmtudisc")
		} else {
			tok("pmtudisc")
		}
		if d.KindExtra != "" {
			tok("%s", d.KindExtra)
		}
	case route.KindBridge:
		br := l.Bridge
		if br == nil {
			br = route.DefaultBridge()
		}
		tok("forward_delay %d hello_time %d max_age %d ageing_time %d stp_state %d priority %d vlan_filtering %d",
			br.ForwardDelay, br.HelloTime, br.MaxAge, br.AgeingTime, br.STPState, br.Priority, br.VlanFiltering)
		extra := d.KindExtra
		if extra == "" {
			id := fmt.Sprintf("%04x.%s", br.Priority, l.HardwareAddr)
			extra = "bridge_id " + id + " designated_root " + id + " root_port 0 root_path_cost 0 topology_change 0 topology_change_detected 0 hello_timer    0.00 tcn_timer    0.00 topology_change_timer    0.00 gc_timer    0.00 group_fwd_mask 0 group_address 01:80:c2:00:00:00 mcast_snooping 1 no_linklocal_learn 0 mcast_vlan_snooping 0 mcast_router 1 mcast_query_use_ifaddr 0 mcast_querier 0 mcast_hash_elasticity 16 mcast_hash_max 4096 mcast_last_member_count 2 mcast_startup_query_count 2 mcast_last_member_interval 100 mcast_membership_interval 26000 mcast_querier_interval 25500 mcast_query_interval 12500 mcast_query_response_interval 1000 mcast_startup_query_interval 3124 mcast_stats_enabled 0 mcast_igmp_version 2 mcast_mld_version 1 nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0"
		}
		tok("%s", extra)
	default:
		if d.KindExtra != "" {
			tok("%s", d.KindExtra)
		}
	}
	return b.String()
}

func portData(s *route.Stack, l *route.Link, d *route.Details) string {
	p := l.BridgePort
	onoff := func(v bool) string {
		if v {
			return "on"
		}
		return "off"
	}
	out := fmt.Sprintf("state %s priority %d cost %d hairpin %s guard off root_block off fastleave off learning %s flood %s ",
		p.State, p.Priority, p.Cost, onoff(p.Hairpin), onoff(p.Learning), onoff(p.Flood))
	extra := d.PortExtra
	if extra == "" {
		n := 0
		for _, o := range s.Links {
			if o.Master == l.Master {
				n++
			}
			if o == l {
				break
			}
		}
		bridgeID := ""
		if m := s.LinkByName(l.Master); m != nil {
			prio := 32768
			if m.Bridge != nil {
				prio = m.Bridge.Priority
			}
			bridgeID = fmt.Sprintf("%04x.%s", prio, m.HardwareAddr)
		}
		extra = fmt.Sprintf("port_id 0x%x port_no 0x%x designated_port %d designated_cost 0 designated_bridge %s designated_root %s hold_timer    0.00 message_age_timer    0.00 forward_delay_timer    0.00 topology_change_ack 0 config_pending 0 proxy_arp off proxy_arp_wifi off mcast_router 1 mcast_fast_leave off mcast_flood on bcast_flood on mcast_to_unicast off neigh_suppress off group_fwd_mask 0 group_fwd_mask_str 0x0 vlan_tunnel off isolated off locked off",
			0x8000+n, n, 0x8000+n, bridgeID, bridgeID)
	}
	return out + extra + " "
}

func addrLines(a *route.Addr, o Options) string {
	var b strings.Builder
	fam := "inet"
	if !a.Prefix.Addr().Is4() {
		fam = "inet6"
	}
	fmt.Fprintf(&b, "    %s %s", fam, a.Prefix.Addr())
	if a.Peer.IsValid() {
		fmt.Fprintf(&b, " peer %s", a.Peer.Addr())
		fmt.Fprintf(&b, "/%d ", a.Peer.Bits())
	} else {
		fmt.Fprintf(&b, "/%d ", a.Prefix.Bits())
	}
	if a.Metric != 0 {
		fmt.Fprintf(&b, "metric %d ", a.Metric)
	}
	if a.Broadcast.IsValid() {
		fmt.Fprintf(&b, "brd %s ", a.Broadcast)
	}
	fmt.Fprintf(&b, "scope %s ", a.Scope)
	for _, f := range addrFlagNames(a) {
		b.WriteString(f + " ")
	}
	if a.Proto != "" && o.atLeast(6, 3) {
		fmt.Fprintf(&b, "proto %s ", a.Proto)
	}
	if a.Prefix.Addr().Is4() && a.Label != "" {
		b.WriteString(a.Label)
	}
	b.WriteString("\n       valid_lft " + lft(a.ValidLft) + " preferred_lft " + lft(a.PreferredLft) + "\n")
	return b.String()
}

func addrFlagNames(a *route.Addr) []string {
	var out []string
	is6 := !a.Prefix.Addr().Is4()
	for _, n := range a.Flags.Names() {
		if n == "secondary" && is6 {
			n = "temporary"
		}
		out = append(out, n)
		if n == "tentative" && a.ValidLft != route.Forever {
			out = append(out, "dynamic")
		}
	}
	if a.ValidLft != route.Forever && !strings.Contains(strings.Join(out, " "), "dynamic") {
		// "dynamic" goes after tentative/deprecated and before mngtmpaddr.
		pos := len(out)
		for i, n := range out {
			if n == "mngtmpaddr" || n == "noprefixroute" || n == "autojoin" || n == "stable-privacy" {
				pos = i
				break
			}
		}
		out = append(out[:pos], append([]string{"dynamic"}, out[pos:]...)...)
	}
	return out
}

func lft(v uint32) string {
	if v == route.Forever {
		return "forever"
	}
	return fmt.Sprintf("%dsec", v)
}
