package compare

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/knet-dev/knet/cluster"
)

// Network is a pod network choice: a CNI plugin and its encapsulation mode.
type Network struct {
	Plugin cluster.CNIPlugin `json:"plugin"`
	Mode   string            `json:"mode"`
}

// String is "calico/IPIPCrossSubnet".
func (n Network) String() string { return string(n.Plugin) + "/" + n.Mode }

// Networks are the pod networks compared, in report order.
func Networks() []Network {
	return []Network{
		{cluster.CNICalico, cluster.CalicoIPIPAlways},
		{cluster.CNICalico, cluster.CalicoIPIPCrossSubnet},
		{cluster.CNICalico, cluster.CalicoVXLANAlways},
		{cluster.CNICalico, cluster.CalicoNever},
		{cluster.CNIKubeRouter, cluster.KubeRouterOverlaySubnet},
		{cluster.CNIFlannel, cluster.FlannelVXLAN},
		{cluster.CNIFlannel, cluster.FlannelHostGW},
	}
}

// ProxyModes are the kube-proxy modes compared, in report order.
func ProxyModes() []cluster.ProxyMode {
	return []cluster.ProxyMode{cluster.ProxyIPTables, cluster.ProxyIPVS, cluster.ProxyNFTables}
}

// synthNode names the representative node i of subnet s.
func synthNode(s, i int) string { return fmt.Sprintf("node-s%d-%d", s, i) }

// clientPod is the client pod on a representative node (its eth0 gives the pod MTU, its IP
// sources the traced first packets).
func clientPod(node string) string { return "client-" + node }

// synthCluster builds a cluster of `nodes` representative nodes spread over min(subnets, 2)
// subnets (enough for a same-subnet and a cross-subnet peer), with the given pod network and
// kube-proxy mode, one client pod per node and `services` synthetic Services from p.
func synthCluster(p *Profile, net Network, mode cluster.ProxyMode, nodes, services int) (*cluster.Cluster, error) {
	subnets := min(p.Subnets, 2)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: knet.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: profile-%s\n", p.Name)
	b.WriteString("podCIDR: 10.0.0.0/16\nserviceCIDR: 10.96.0.0/12\n")
	fmt.Fprintf(&b, "cni:\n  plugin: %s\n  mode: %s\n  blockSize: 24\n  mtu: %d\n", net.Plugin, net.Mode, p.MTU)
	fmt.Fprintf(&b, "kubeProxy:\n  mode: %s\n  version: %s\nnodes:\n", mode, p.KubeProxyVersion)
	per := (nodes + subnets - 1) / subnets
	var names []string
	for i := 0; len(names) < nodes; i++ {
		s, k := i%subnets, i/subnets
		if k >= per {
			break
		}
		name := synthNode(s, k)
		names = append(names, name)
		role := cluster.RoleWorker
		fmt.Fprintf(&b, "- {name: %s, ip: 172.20.%d.%d, subnet: 172.20.%d.0/20, zone: zone-%d, role: %s}\n",
			name, s*16+k/200, 10+k%200, s*16, s, role)
	}
	b.WriteString("objects:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "- {apiVersion: v1, kind: Pod, metadata: {name: %s, namespace: default, labels: {app: client}}, spec: {nodeName: %s, containers: [{name: client, image: \"registry.k8s.io/e2e-test-images/agnhost:2.53\"}]}}\n", clientPod(n), n)
	}
	c, err := cluster.ParseCluster([]byte(b.String()), "profile "+p.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("synthetic cluster for profile %s (%s, %s): %w", p.Name, net, mode, err)
	}
	addServices(c, p, services)
	return c, nil
}

// serviceIP is the ClusterIP of synthetic Service i (10.96.0.0/12, after the first 256).
func serviceIP(i int) netip.Addr {
	v := uint32(10)<<24 | uint32(96)<<16 | uint32(256+i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// servicePort is the port every synthetic Service exposes, targetPort its pods' port.
const (
	servicePort = 80
	targetPort  = 8080
)

func serviceName(i int) (ns, name string) {
	return fmt.Sprintf("ns-%02d", i%20), fmt.Sprintf("svc-%05d", i)
}

// addServices appends n synthetic Services with their EndpointSlices: every
// 1/NodePortShare-th Service a NodePort, every 1/AffinityShare-th with ClientIP affinity,
// endpoints spread round-robin over the nodes' pod blocks.
func addServices(c *cluster.Cluster, p *Profile, n int) {
	tcp := corev1.ProtocolTCP
	every := func(share float64) int {
		if share <= 0 {
			return 0
		}
		return max(1, int(1/share+0.5))
	}
	npEvery, affEvery := every(p.NodePortShare), every(p.AffinityShare)
	for i := range n {
		ns, name := serviceName(i)
		ip := serviceIP(i).String()
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(c.Created)},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, SessionAffinity: corev1.ServiceAffinityNone,
				Ports: []corev1.ServicePort{{Name: "http", Port: servicePort, Protocol: tcp}},
			},
		}
		if npEvery > 0 && i%npEvery == npEvery-1 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i%2768)
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		if affEvery > 0 && i%affEvery == affEvery-1 {
			svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}}
		}
		c.Objects.Services = append(c.Objects.Services, svc)
		es := &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-synth", CreationTimestamp: metav1.NewTime(c.Created),
				Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](targetPort), Protocol: &tcp}},
		}
		for j := range p.EndpointsPerService {
			k := i*p.EndpointsPerService + j
			// Endpoints are spread over the profile's nodes; those on nodes beyond the rendered
			// ones get a node name that is not rendered and an address from 100.64.0.0/10, so
			// the representative node holds the profile's share of local endpoints.
			var addr netip.Addr
			var node, zone string
			if idx := k % max(p.Nodes, len(c.Nodes)); idx < len(c.Nodes) {
				nd := c.Nodes[idx]
				a := nd.PodCIDR.Masked().Addr().As4()
				a[3] += byte(10 + (k/len(c.Nodes))%240)
				addr, node, zone = netip.AddrFrom4(a), nd.Name, nd.Zone
			} else {
				v := uint32(100)<<24 | uint32(64)<<16 | uint32(k)&(1<<22-1)
				addr = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
				node, zone = fmt.Sprintf("node-v%d", idx), fmt.Sprintf("zone-%d", idx%p.Subnets)
			}
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{addr.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				NodeName:   &node, Zone: ptr.To(zone),
			})
		}
		c.Objects.EndpointSlices = append(c.Objects.EndpointSlices, es)
	}
	cluster.ApplyDefaults(&c.Objects)
}

// changeOneEndpoint replaces the first endpoint of Service i by a pod address no other
// endpoint has (one endpoint change, as a rolling update produces).
func changeOneEndpoint(c *cluster.Cluster, i int) {
	ns, name := serviceName(i)
	for _, es := range c.Objects.EndpointSlices {
		if es.Namespace == ns && es.Labels[discoveryv1.LabelServiceName] == name && len(es.Endpoints) > 0 {
			// .253 of the first node's block: no synthetic endpoint uses it (hosts are .10-.249).
			a := c.Nodes[0].PodCIDR.Masked().Addr().As4()
			a[3] = 253
			es.Endpoints[0].Addresses = []string{netip.AddrFrom4(a).String()}
			return
		}
	}
}
