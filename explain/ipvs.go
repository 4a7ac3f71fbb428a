package explain

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	dpipvs "github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// Kinds of ipvsadm lines.
const (
	KindIPVSHeader   Kind = "ipvs-header"
	KindIPVSTitle    Kind = "ipvs-title"
	KindIPVSService  Kind = "virtual-server"
	KindIPVSDest     Kind = "real-server"
	KindIPVSConn     Kind = "ipvs-connection"
	KindIPVSTemplate Kind = "ipvs-persistence-template"
	KindIPVSTimeout  Kind = "ipvs-timeouts"
	KindBlank        Kind = "blank"
)

// vipUse is what a Service address:port is to kube-proxy.
type vipUse struct {
	sp   *kubeproxy.ServicePort
	role string // "ClusterIP", "externalIP", "LoadBalancer IP", "NodePort"
}

// svcIndex ties addresses and ports to Services, Service ports, pods and nodes.
type svcIndex struct {
	vips      map[string]vipUse // "tcp 10.96.0.1:443"
	nodePorts map[string]*kubeproxy.ServicePort
	hcPorts   map[int]*kubeproxy.ServicePort
	pods      map[netip.Addr]string
	nodes     map[netip.Addr]string
	ranges    map[string]*kubeproxy.ServicePort // "IP,proto:port,cidr"
}

func newSvcIndex(objs *cluster.Objects) *svcIndex {
	x := &svcIndex{vips: map[string]vipUse{}, nodePorts: map[string]*kubeproxy.ServicePort{}, hcPorts: map[int]*kubeproxy.ServicePort{},
		pods: map[netip.Addr]string{}, nodes: map[netip.Addr]string{}, ranges: map[string]*kubeproxy.ServicePort{}}
	if objs == nil {
		return x
	}
	for _, fam := range []kubeproxy.Family{kubeproxy.IPv4, kubeproxy.IPv6} {
		for _, sp := range kubeproxy.ServicePorts(objs.Services, fam) {
			key := func(a netip.Addr, port int) string {
				return fmt.Sprintf("%s %s", sp.Protocol, netip.AddrPortFrom(a, uint16(port)))
			}
			x.vips[key(sp.ClusterIP, sp.Port)] = vipUse{sp, "ClusterIP"}
			for _, a := range sp.ExternalIPs {
				x.vips[key(a, sp.Port)] = vipUse{sp, "externalIP"}
			}
			for _, a := range sp.LoadBalancerVIPs {
				x.vips[key(a, sp.Port)] = vipUse{sp, "LoadBalancer IP"}
				for _, r := range sp.SourceRanges {
					x.ranges[fmt.Sprintf("%s,%s:%d,%s", a, sp.Protocol, sp.Port, r)] = sp
				}
			}
			if sp.NodePort != 0 {
				x.nodePorts[fmt.Sprintf("%s %d", sp.Protocol, sp.NodePort)] = sp
			}
			if sp.HealthCheckNodePort != 0 {
				x.hcPorts[sp.HealthCheckNodePort] = sp
			}
		}
	}
	for _, p := range objs.Pods {
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil && !p.Spec.HostNetwork {
				x.pods[a] = p.Namespace + "/" + p.Name
			}
		}
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil && !p.Spec.HostNetwork {
			x.pods[a] = p.Namespace + "/" + p.Name
		}
	}
	for _, es := range objs.EndpointSlices {
		for _, e := range es.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
				continue
			}
			for _, s := range e.Addresses {
				if a, err := netip.ParseAddr(s); err == nil {
					if _, ok := x.pods[a]; !ok {
						x.pods[a] = e.TargetRef.Namespace + "/" + e.TargetRef.Name
					}
				}
			}
		}
	}
	for _, n := range objs.Nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				x.nodes[ip] = n.Name
			}
		}
	}
	return x
}

func spRefs(sp *kubeproxy.ServicePort) Refs {
	return Refs{Service: sp.Name.Namespace + "/" + sp.Name.Name, Port: sp.Name.Port}
}

// portLabel names a service port for prose: "port http (80/TCP)".
func portLabel(sp *kubeproxy.ServicePort) string {
	n := strconv.Itoa(sp.Port) + "/" + strings.ToUpper(sp.Protocol)
	if sp.Name.Port != "" {
		return "port " + sp.Name.Port + " (" + n + ")"
	}
	return "port " + n
}

// service explains a virtual server.
func (x *svcIndex) service(s *dpipvs.Service) (string, Refs, bool) {
	if s.IsFWMark() {
		return fmt.Sprintf("firewall-mark virtual server %d (kube-proxy never creates these)", s.FWMark), Refs{}, false
	}
	var b strings.Builder
	var refs Refs
	ok := true
	key := fmt.Sprintf("%s %s", s.Protocol, netip.AddrPortFrom(s.Addr, s.Port))
	if u, found := x.vips[key]; found {
		refs = spRefs(u.sp)
		fmt.Fprintf(&b, "virtual server for Service %s %s, its %s %s", refs.Service, portLabel(u.sp), u.role, netip.AddrPortFrom(s.Addr, s.Port))
		if u.role != "ClusterIP" && u.sp.ExternalPolicyLocal {
			b.WriteString(" (externalTrafficPolicy Local: local endpoints only)")
		}
	} else if sp, found := x.nodePorts[fmt.Sprintf("%s %d", s.Protocol, s.Port)]; found {
		refs = spRefs(sp)
		node := x.nodes[s.Addr]
		refs.Node = node
		where := "node address " + s.Addr.String()
		if node != "" {
			where += " (node " + node + ")"
		} else {
			where += " (a local address of the node, e.g. a CNI device)"
		}
		fmt.Fprintf(&b, "virtual server for NodePort %d/%s of Service %s %s on %s", s.Port, strings.ToUpper(string(s.Protocol)), refs.Service, portLabel(sp), where)
	} else {
		ok = false
		fmt.Fprintf(&b, "virtual server %s matches no Service in the objects (stale, another tool's, or objects missing)", key)
	}
	fmt.Fprintf(&b, "; scheduler %s", s.Scheduler)
	if s.Flags&dpipvs.FlagPersistent != 0 {
		fmt.Fprintf(&b, ", persistent %d s (sessionAffinity ClientIP)", s.Timeout)
	}
	if s.Scheduler == dpipvs.MaglevHashing && s.Flags&dpipvs.FlagMHPort != 0 {
		b.WriteString(", mh-port (kube-proxy's FlagSourceHash)")
	}
	return b.String(), refs, ok
}

func (x *svcIndex) dest(s *dpipvs.Service, d *dpipvs.Dest) (string, Refs, bool) {
	var refs Refs
	if s != nil {
		if u, ok := x.vips[fmt.Sprintf("%s %s", s.Protocol, netip.AddrPortFrom(s.Addr, s.Port))]; ok {
			refs = spRefs(u.sp)
		} else if sp, ok := x.nodePorts[fmt.Sprintf("%s %d", s.Protocol, s.Port)]; ok {
			refs = spRefs(sp)
		}
	}
	refs.Endpoint = d.AddrPort().String()
	who := "endpoint " + refs.Endpoint
	pod, ok := x.pods[d.Addr]
	if ok {
		refs.Pod = pod
		who = "pod " + pod + " (endpoint " + refs.Endpoint + ")"
	} else if n, isNode := x.nodes[d.Addr]; isNode {
		refs.Node = n
		who = "node " + n + " (host-network endpoint " + refs.Endpoint + ")"
		ok = true
	}
	m := fmt.Sprintf("real server: %s, forwarding %s, weight %d", who, d.Forward.Label(), d.Weight)
	if d.Weight == 0 {
		m += " (quiesced: kube-proxy's graceful termination drains it)"
	}
	m += fmt.Sprintf(", %d active / %d inactive connections", d.ActiveConns, d.InactConns)
	return m, refs, ok
}

// IPVSAdm explains ipvsadm output (`-Ln` in any view, `-Lnc`, `--timeout`, `ipvsadm-save
// -n`) line by line: each virtual server tied to its Service port and role (ClusterIP,
// NodePort on a node address, externalIP, LoadBalancer IP), each real server to its pod, each
// connection to its client, Service and pod. objs may be nil.
func IPVSAdm(file string, data []byte, objs *cluster.Objects) ([]Record, error) {
	d, err := ipvsadm.Parse(file, data)
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
		case ipvsadm.LineBlank:
			r.Kind, r.Meaning = KindBlank, "blank line"
		case ipvsadm.LineHeader:
			r.Kind = KindIPVSHeader
			if d.Kind == ipvsadm.KindConns {
				r.Meaning = "IPVS connection table (ipvsadm -Lnc): one line per connection or persistence template"
			} else {
				r.Meaning = fmt.Sprintf("IPVS %s with a connection hash table of %d buckets (ipvsadm -Ln); kube-proxy's IPVS mode is deprecated since v1.35", d.State.Version, d.State.ConnTabSize)
			}
		case ipvsadm.LineTitle:
			r.Kind, r.Meaning = KindIPVSTitle, "column titles"
		case ipvsadm.LineTimeout:
			t := d.State.Timeouts
			r.Kind, r.Meaning = KindIPVSTimeout, fmt.Sprintf("IPVS timeouts: established TCP %s, TCP after FIN %s, UDP %s (kube-proxy's ipvs.tcpTimeout etc. set them when non-zero)", t.TCP, t.TCPFin, t.UDP)
		case ipvsadm.LineService:
			m, refs, ok := x.service(l.Service)
			r.Meaning, r.Refs = m, refs
			if ok {
				r.Kind = KindIPVSService
			}
		case ipvsadm.LineDest:
			m, refs, ok := x.dest(l.Service, l.Dest)
			r.Meaning, r.Refs = m, refs
			if ok {
				r.Kind = KindIPVSDest
			}
		case ipvsadm.LineConn:
			r.Kind, r.Meaning, r.Refs = x.conn(l.Conn)
		default:
			r.Meaning = "not understood: " + bad[l.Number]
		}
		out = append(out, r)
	}
	return out, nil
}

func (x *svcIndex) conn(c *dpipvs.Conn) (Kind, string, Refs) {
	var refs Refs
	svc := "virtual server " + c.Virtual.String()
	if u, ok := x.vips[fmt.Sprintf("%s %s", c.Proto, c.Virtual)]; ok {
		refs = spRefs(u.sp)
		svc = "Service " + refs.Service + " " + portLabel(u.sp) + " (" + u.role + ")"
	} else if sp, ok := x.nodePorts[fmt.Sprintf("%s %d", c.Proto, c.Virtual.Port())]; ok {
		refs = spRefs(sp)
		svc = "Service " + refs.Service + " NodePort " + strconv.Itoa(int(c.Virtual.Port()))
	}
	refs.Endpoint = c.Real.String()
	dst := c.Real.String()
	if p, ok := x.pods[c.Real.Addr()]; ok {
		refs.Pod = p
		dst = "pod " + p + " (" + dst + ")"
	}
	client := c.Client.Addr().String()
	if p, ok := x.pods[c.Client.Addr()]; ok {
		client = "pod " + p + " (" + client + ")"
	} else if n, ok := x.nodes[c.Client.Addr()]; ok {
		client = "node " + n + " (" + client + ")"
	}
	if c.Template {
		return KindIPVSTemplate, fmt.Sprintf("persistence template: clients from %s stick to %s for %s (sessionAffinity ClientIP)", client, dst, svc), refs
	}
	return KindIPVSConn, fmt.Sprintf("%s connection in state %s from %s port %d to %s, scheduled to %s", strings.ToUpper(string(c.Proto)), c.State, client, c.Client.Port(), svc, dst), refs
}
