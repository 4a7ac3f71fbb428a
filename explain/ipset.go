package explain

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/knet-dev/knet/cluster"
	dpipset "github.com/knet-dev/knet/dataplane/ipset"
	fipset "github.com/knet-dev/knet/format/ipset"
	kpipvs "github.com/knet-dev/knet/render/kubeproxy/ipvs"
)

// Kinds of ipset lines.
const (
	KindIPSetCreate Kind = "ipset"
	KindIPSetMember Kind = "ipset-member"
	KindIPSetField  Kind = "ipset-field"
)

// kubeSet returns kube-proxy's description of a set name (IPv4 or the KUBE-6- IPv6 names).
func kubeSet(name string) (kpipvs.SetInfo, bool) {
	for _, si := range kpipvs.SetInfos() {
		if si.Name == name || kpipvs.SetName(si.Name, "IPv6") == name {
			return si, true
		}
	}
	return kpipvs.SetInfo{}, false
}

// IPSet explains `ipset save` or `ipset list` output: each set kube-proxy's IPVS mode keeps
// with its purpose (and the iptables rule that matches it), each member with the Service,
// NodePort, endpoint pod or source range kube-proxy put there. Sets of other owners are
// reported as such (Calico's cali40*, kube-router's kube-router-*). objs may be nil.
func IPSet(file string, data []byte, objs *cluster.Objects) ([]Record, error) {
	d, err := fipset.Parse(file, data)
	if err != nil {
		return nil, err
	}
	x := newSvcIndex(objs)
	bad := map[int]string{}
	for _, s := range d.Skipped {
		bad[s.Line] = s.Reason
	}
	var out []Record
	for _, l := range d.Lines {
		r := Record{File: file, Line: l.Number, Text: l.Text, Kind: Unknown}
		switch l.Kind {
		case "blank":
			r.Kind, r.Meaning = KindBlank, "blank line"
		case "create", "name", "field", "members":
			name := ""
			if l.Set != nil {
				name = l.Set.Name
			} else if l.Kind == "name" {
				name = strings.TrimPrefix(strings.TrimSpace(l.Text), "Name: ")
			}
			r.Kind, r.Meaning = setMeaning(name, l.Kind)
		case "add", "member":
			r.Kind, r.Meaning, r.Refs = x.member(l.Set, l.Member)
		default:
			r.Meaning = "not understood: " + bad[l.Number]
		}
		out = append(out, r)
	}
	return out, nil
}

func setMeaning(name, kind string) (Kind, string) {
	k := KindIPSetCreate
	if kind == "field" || kind == "members" {
		k = KindIPSetField
	}
	if si, ok := kubeSet(name); ok {
		return k, fmt.Sprintf("kube-proxy (IPVS mode) set %s: %s", name, si.Comment)
	}
	switch {
	case strings.HasPrefix(name, "cali40"), strings.HasPrefix(name, "cali60"):
		return k, fmt.Sprintf("Calico (Felix) set %s", name)
	case strings.HasPrefix(name, "kube-router-"), strings.HasPrefix(name, "KUBE-DST-"), strings.HasPrefix(name, "KUBE-SRC-"):
		return k, fmt.Sprintf("kube-router set %s", name)
	case name == "":
		return Unknown, "set header not understood"
	}
	return Unknown, fmt.Sprintf("set %s is not one kube-proxy, Calico or kube-router creates", name)
}

func (x *svcIndex) member(s *dpipset.Set, m *dpipset.Member) (Kind, string, Refs) {
	if s == nil || m == nil {
		return Unknown, "member of an unknown set", Refs{}
	}
	key := s.Key(*m)
	base := s.Name
	if si, ok := kubeSet(s.Name); ok {
		base = si.Name
	}
	vip := func(role string) (Kind, string, Refs) {
		k := fmt.Sprintf("%s %s", m.Proto, netip.AddrPortFrom(m.IP, m.Port))
		if u, ok := x.vips[k]; ok {
			refs := spRefs(u.sp)
			return KindIPSetMember, fmt.Sprintf("%s %s of Service %s %s", u.role, netip.AddrPortFrom(m.IP, m.Port), refs.Service, portLabel(u.sp)) + role, refs
		}
		return Unknown, fmt.Sprintf("%s matches no Service in the objects", key), Refs{}
	}
	nodePort := func(proto, role string) (Kind, string, Refs) {
		if sp, ok := x.nodePorts[fmt.Sprintf("%s %d", proto, m.Port)]; ok {
			refs := spRefs(sp)
			return KindIPSetMember, fmt.Sprintf("NodePort %d/%s of Service %s %s%s", m.Port, strings.ToUpper(proto), refs.Service, portLabel(sp), role), refs
		}
		return Unknown, fmt.Sprintf("NodePort %d matches no Service in the objects", m.Port), Refs{}
	}
	switch base {
	case "KUBE-CLUSTER-IP":
		return vip(": masqueraded when it comes from outside the pod network, accepted in KUBE-SERVICES")
	case "KUBE-EXTERNAL-IP":
		return vip(": masqueraded and accepted")
	case "KUBE-EXTERNAL-IP-LOCAL":
		return vip(" with externalTrafficPolicy Local (source kept)")
	case "KUBE-LOAD-BALANCER":
		return vip(": jumps to KUBE-LOAD-BALANCER (masquerade unless Local)")
	case "KUBE-LOAD-BALANCER-LOCAL":
		return vip(" with externalTrafficPolicy Local (no masquerade)")
	case "KUBE-LOAD-BALANCER-FW":
		return vip(" with loadBalancerSourceRanges: checked by KUBE-SOURCE-RANGES-FIREWALL")
	case "KUBE-LOAD-BALANCER-SOURCE-CIDR":
		if sp, ok := x.ranges[key]; ok {
			refs := spRefs(sp)
			return KindIPSetMember, fmt.Sprintf("source range %s allowed to LoadBalancer IP %s of Service %s", netString(m.Net), m.IP, refs.Service), refs
		}
		return Unknown, "source range matches no Service's loadBalancerSourceRanges", Refs{}
	case "KUBE-LOAD-BALANCER-SOURCE-IP":
		return vip(": the node itself may reach its LoadBalancer IP (its address is inside a source range)")
	case "KUBE-LOOP-BACK":
		refs := Refs{Endpoint: netip.AddrPortFrom(m.IP, m.Port).String()}
		who := "endpoint " + refs.Endpoint
		if p, ok := x.pods[m.IP]; ok {
			refs.Pod = p
			who = "pod " + p + " (" + refs.Endpoint + ")"
		}
		return KindIPSetMember, fmt.Sprintf("local %s: hairpin traffic from the pod to itself through a Service is masqueraded", who), refs
	case "KUBE-NODE-PORT-TCP", "KUBE-NODE-PORT-LOCAL-TCP":
		return nodePort("tcp", map[bool]string{true: " (externalTrafficPolicy Local: not masqueraded)", false: ": masqueraded"}[strings.Contains(base, "LOCAL")])
	case "KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP":
		return nodePort("udp", map[bool]string{true: " (externalTrafficPolicy Local: not masqueraded)", false: ": masqueraded"}[strings.Contains(base, "LOCAL")])
	case "KUBE-NODE-PORT-SCTP-HASH", "KUBE-NODE-PORT-LOCAL-SCTP-HASH":
		k, msg, refs := nodePort("sctp", "")
		node := x.nodes[m.IP]
		if node == "" {
			node = "a local address"
		}
		return k, msg + " on " + m.IP.String() + " (" + node + ")", refs
	case "KUBE-HEALTH-CHECK-NODE-PORT":
		if sp, ok := x.hcPorts[int(m.Port)]; ok {
			refs := spRefs(sp)
			return KindIPSetMember, fmt.Sprintf("healthCheckNodePort %d of Service %s (externalTrafficPolicy Local), accepted in KUBE-NODE-PORT", m.Port, refs.Service), refs
		}
		return Unknown, fmt.Sprintf("health check port %d matches no Service in the objects", m.Port), Refs{}
	case "KUBE-IPVS-IPS":
		var uses []vipUse
		for k, u := range x.vips {
			if _, rest, ok := strings.Cut(k, " "); ok {
				if ap, err := netip.ParseAddrPort(rest); err == nil && ap.Addr() == m.IP {
					uses = append(uses, u)
				}
			}
		}
		sort.Slice(uses, func(i, j int) bool {
			a, b := uses[i].sp.NameString+uses[i].role, uses[j].sp.NameString+uses[j].role
			return a < b
		})
		if len(uses) > 0 {
			u := uses[0]
			refs := Refs{Service: u.sp.Name.Namespace + "/" + u.sp.Name.Name}
			return KindIPSetMember, fmt.Sprintf("address bound to kube-ipvs0: %s of Service %s (new connections to other ports are rejected by KUBE-IPVS-FILTER)", u.role, refs.Service), refs
		}
		return Unknown, fmt.Sprintf("address %s on kube-ipvs0 belongs to no Service in the objects (stale?)", m.IP), Refs{}
	}
	return KindIPSetMember, fmt.Sprintf("member %s of set %s", key, s.Name), Refs{}
}

func netString(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}
