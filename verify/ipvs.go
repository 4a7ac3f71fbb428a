package verify

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/ipvsadm"
)

// ipvsDummy is the dummy device kube-proxy's IPVS mode binds Service addresses to.
const ipvsDummy = "kube-ipvs0"

// saveLines are `ipvsadm-save -n` lines of s with only the given real servers (all when
// dests is nil).
func saveLines(s *ipvs.Service, dests []*ipvs.Dest, prefix string) []string {
	cp := *s
	if dests != nil {
		cp.Dests = dests
	}
	st := &ipvs.State{Services: []*ipvs.Service{&cp}}
	var b bytes.Buffer
	if err := ipvsadm.WriteSave(&b, st); err != nil {
		return []string{prefix + s.String()}
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if dests != nil && strings.HasPrefix(l, "-A ") && len(dests) > 0 {
			continue // only the real server lines
		}
		out = append(out, prefix+l)
		if len(out) > maxEvidence {
			break
		}
	}
	return out
}

func (v *verifier) serviceObject(s *ipvs.Service) string {
	if o, ok := v.names().vips[netip.AddrPortFrom(s.Addr, s.Port)]; ok {
		return o
	}
	return v.nodeObject()
}

func ipvsServices(n *dataplane.Node) []*ipvs.Service {
	if n == nil || n.IPVS == nil {
		return nil
	}
	return n.IPVS.Services
}

func findService(n *dataplane.Node, s *ipvs.Service) *ipvs.Service {
	if n == nil || n.IPVS == nil {
		return nil
	}
	for _, a := range n.IPVS.Services {
		if a.Protocol == s.Protocol && a.Addr == s.Addr && a.Port == s.Port && a.FWMark == s.FWMark {
			return a
		}
	}
	return nil
}

// serviceIndex maps a virtual service's identity to it.
func serviceIndex(n *dataplane.Node) map[string]*ipvs.Service {
	m := map[string]*ipvs.Service{}
	for _, s := range ipvsServices(n) {
		m[s.String()] = s
	}
	return m
}

// checkIPVSServices (IPVS mode): every virtual service and real server of the intent is
// in the snapshot, and the snapshot has no real servers or services the intent lacks.
func checkIPVSServices(v *verifier) {
	want := ipvsServices(v.intent)
	if len(want) == 0 || v.actual.IPVS == nil {
		return // nothing asked, or not collected (checkCollected)
	}
	have := serviceIndex(v.actual)
	seen := map[string]bool{}
	for _, s := range want {
		seen[s.String()] = true
		a := have[s.String()]
		if a == nil {
			v.add(Finding{Severity: SeverityError, Check: CheckIPVSMissingService, Object: v.serviceObject(s),
				Message:  fmt.Sprintf("virtual service %s is missing", s),
				Evidence: saveLines(s, nil, "expected: "),
				Fix:      "restart kube-proxy (IPVS mode) so that it resyncs the virtual services"})
			continue
		}
		var missing, stale []*ipvs.Dest
		for _, d := range s.Dests {
			if a.Dest(d.Addr, d.Port) == nil {
				missing = append(missing, d)
			}
		}
		for _, d := range a.Dests {
			if s.Dest(d.Addr, d.Port) == nil {
				stale = append(stale, d)
			}
		}
		if len(missing) > 0 {
			v.add(Finding{Severity: SeverityError, Check: CheckIPVSMissingRealServer, Object: v.serviceObject(s),
				Message:  fmt.Sprintf("virtual service %s lacks %d of its %d real servers", s, len(missing), len(s.Dests)),
				Evidence: saveLines(s, missing, "expected: "),
				Fix:      "restart kube-proxy so that it resyncs the real servers from the EndpointSlices"})
		}
		if len(stale) > 0 {
			v.add(Finding{Severity: SeverityError, Check: CheckIPVSStaleRealServer, Object: v.serviceObject(s),
				Message:  fmt.Sprintf("virtual service %s has %d real servers that are not endpoints", s, len(stale)),
				Evidence: saveLines(a, stale, ""),
				Fix:      fmt.Sprintf("ipvsadm -d %s -r ADDR:PORT for each, or restart kube-proxy", ruleArg(a))})
		}
	}
	for _, a := range ipvsServices(v.actual) {
		if seen[a.String()] {
			continue
		}
		v.add(Finding{Severity: SeverityWarning, Check: CheckIPVSStaleService, Object: v.serviceObject(a),
			Message:  fmt.Sprintf("virtual service %s is not asked for by any Service", a),
			Evidence: saveLines(a, nil, ""),
			Fix:      fmt.Sprintf("ipvsadm -D %s, or restart kube-proxy", ruleArg(a))})
	}
}

// ruleArg is ipvsadm's service switch: `-t 10.96.0.1:443`, `-u ...`, `--sctp-service ...`, `-f 5`.
func ruleArg(s *ipvs.Service) string {
	if s.IsFWMark() {
		return fmt.Sprintf("-f %d", s.FWMark)
	}
	sw := "-t"
	switch s.Protocol {
	case ipvs.Protocol("udp"):
		sw = "-u"
	case ipvs.Protocol("sctp"):
		sw = "--sctp-service"
	}
	ap := netip.AddrPortFrom(s.Addr, s.Port).String()
	return sw + " " + ap
}

func linkAddrs(n *dataplane.Node, dev string) []*route.Addr {
	if n == nil || n.Net == nil {
		return nil
	}
	var out []*route.Addr
	for _, a := range n.Net.Addrs {
		if a.Dev == dev {
			out = append(out, a)
		}
	}
	return out
}

func addrLine(a *route.Addr) string {
	return fmt.Sprintf("    inet %s scope %s %s", a.Prefix, a.Scope, a.Dev)
}

// checkIPVSAddresses (IPVS mode): every Service address the intent binds to kube-ipvs0 is
// bound in the snapshot, and every address bound there has a virtual service.
func checkIPVSAddresses(v *verifier) {
	want := linkAddrs(v.intent, ipvsDummy)
	if len(want) == 0 || v.intent.Net.LinkByName(ipvsDummy) == nil {
		return
	}
	have := map[netip.Addr]bool{}
	actual := linkAddrs(v.actual, ipvsDummy)
	for _, a := range actual {
		have[a.Prefix.Addr()] = true
	}
	if v.actual.Net == nil || v.actual.Net.LinkByName(ipvsDummy) == nil {
		v.add(Finding{Severity: SeverityError, Check: CheckIPVSServiceNoAddr, Object: v.nodeObject(),
			Message:  "kube-ipvs0 does not exist: no Service address is local, so IPVS never sees Service traffic",
			Evidence: []string{"expected: " + ipvsDummy + ": <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN"},
			Fix:      "restart kube-proxy (IPVS mode); it creates kube-ipvs0 and binds every Service address"})
		return
	}
	for _, a := range want {
		if have[a.Prefix.Addr()] {
			continue
		}
		obj := v.names().ips[a.Prefix.Addr()]
		if obj == "" {
			obj = v.nodeObject()
		}
		v.add(Finding{Severity: SeverityError, Check: CheckIPVSServiceNoAddr, Object: obj,
			Message:  fmt.Sprintf("Service address %s is not bound to kube-ipvs0: the virtual service is unreachable", a.Prefix.Addr()),
			Evidence: []string{"expected: " + addrLine(a)},
			Fix:      fmt.Sprintf("ip addr add %s dev kube-ipvs0, or restart kube-proxy", a.Prefix)})
	}
	if v.actual.IPVS == nil {
		return // IPVS not collected (checkCollected): cannot tell which addresses are unused
	}
	vs := map[netip.Addr]bool{}
	for _, s := range ipvsServices(v.actual) {
		vs[s.Addr] = true
	}
	for _, a := range actual {
		if vs[a.Prefix.Addr()] {
			continue
		}
		v.add(Finding{Severity: SeverityWarning, Check: CheckIPVSAddrNoService, Object: v.nodeObject(),
			Message:  fmt.Sprintf("kube-ipvs0 holds %s but no virtual service uses it: the node answers that address itself", a.Prefix.Addr()),
			Evidence: []string{addrLine(a)},
			Fix:      fmt.Sprintf("ip addr del %s dev kube-ipvs0", a.Prefix)})
	}
}
