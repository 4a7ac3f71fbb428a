package simulate

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// Target names the Service port to load and the node whose kube-proxy balances it.
type Target struct {
	// Service is "namespace/name", "namespace/name:port" (port name or number) or "name"
	// in the default namespace.
	Service string
	// Node is the node the clients sit on (its kube-proxy does the balancing).
	Node    string
	NodeIPs []netip.Addr
}

// ServicePort resolves the target to its service port, endpoints (Cluster policy, sorted as
// kube-proxy sorts them) and pod names.
func ServicePort(objs cluster.Objects, t Target) (*kubeproxy.ServicePort, []Endpoint, error) {
	ref := t.Service
	port := ""
	if i := strings.LastIndex(ref, ":"); i >= 0 {
		ref, port = ref[:i], ref[i+1:]
	}
	ns, name := "default", ref
	if a, b, ok := strings.Cut(ref, "/"); ok {
		ns, name = a, b
	}
	ports := kubeproxy.ServicePorts(objs.Services, kubeproxy.IPv4)
	var sp *kubeproxy.ServicePort
	var names []string
	for _, p := range ports {
		if p.Name.Namespace != ns || p.Name.Name != name {
			continue
		}
		names = append(names, p.Name.Port+"/"+strconv.Itoa(p.Port))
		if port == "" || port == p.Name.Port || port == strconv.Itoa(p.Port) {
			if sp == nil {
				sp = p
			}
		}
	}
	if sp == nil {
		if len(names) > 0 {
			return nil, nil, fmt.Errorf("service %s/%s has no port %q (ports: %s)", ns, name, port, strings.Join(names, ", "))
		}
		return nil, nil, fmt.Errorf("no IPv4 ClusterIP service %s/%s", ns, name)
	}
	eps := kubeproxy.Endpoints(objs.EndpointSlices, ports, kubeproxy.IPv4, t.Node)[sp]
	clusterEPs, _, _, _ := kubeproxy.CategorizeEndpoints(eps, sp, t.Node, kubeproxy.NodeZone(objs, t.Node))
	pods := map[netip.Addr]string{}
	for _, p := range objs.Pods {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			pods[a] = p.Namespace + "/" + p.Name
		}
	}
	var out []Endpoint
	for _, e := range clusterEPs {
		name := e.Pod
		if name == "" {
			name = pods[e.IP]
		}
		out = append(out, Endpoint{Addr: netip.AddrPortFrom(e.IP, uint16(e.Port)), Name: name, Weight: 1})
	}
	return sp, out, nil
}

// Probabilities fills each endpoint's iptables statistic probability from the restore input
// kube-proxy's iptables mode writes for the node (the KUBE-SVC chain's rules for the port).
func Probabilities(objs cluster.Objects, t Target, sp *kubeproxy.ServicePort, eps []Endpoint) error {
	opts := iptables.DefaultOptions(t.Node, t.NodeIPs...)
	restore, err := iptables.Render(objs, opts)
	if err != nil {
		return fmt.Errorf("render iptables rules: %w", err)
	}
	found := 0
	for _, line := range bytes.Split(restore, []byte("\n")) {
		l := string(line)
		if !strings.HasPrefix(l, "-A KUBE-SVC-") || strings.Contains(l, " -m recent ") {
			continue
		}
		for i := range eps {
			if !strings.Contains(l, `--comment "`+sp.NameString+` -> `+eps[i].Addr.String()+`"`) {
				continue
			}
			eps[i].Probability = 1
			if j := strings.Index(l, "--probability "); j >= 0 {
				f := strings.Fields(l[j+len("--probability "):])
				p, err := strconv.ParseFloat(f[0], 64)
				if err != nil {
					return fmt.Errorf("rule %q: bad probability", l)
				}
				eps[i].Probability = p
			}
			found++
		}
	}
	if found != len(eps) {
		return fmt.Errorf("found %d statistic rules for %s, want %d", found, sp.NameString, len(eps))
	}
	return nil
}

// Configs returns the simulation configs for the target: iptables (when withIPTables) and
// one per IPVS scheduler given.
func Configs(objs cluster.Objects, t Target, base Config, withIPTables bool, scheds []ipvs.Scheduler) ([]Config, error) {
	sp, eps, err := ServicePort(objs, t)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("service %s has no ready endpoints", sp.NameString)
	}
	base.Service = netip.AddrPortFrom(sp.ClusterIP, uint16(sp.Port))
	base.Proto = ipvs.Protocol(sp.Protocol)
	base.Affinity = sp.AffinityClientIP
	if sp.AffinityClientIP {
		base.AffinityTimeout = secs(sp.StickySeconds)
	}
	var out []Config
	if withIPTables {
		ep := append([]Endpoint(nil), eps...)
		if err := Probabilities(objs, t, sp, ep); err != nil {
			return nil, err
		}
		c := base
		c.Mode, c.Endpoints = IPTables, ep
		out = append(out, c)
	}
	for _, s := range scheds {
		c := base
		c.Mode, c.Scheduler = IPVS, s
		c.Endpoints = append([]Endpoint(nil), eps...)
		out = append(out, c)
	}
	return out, nil
}
