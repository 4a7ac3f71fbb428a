package cluster

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	netutils "k8s.io/utils/net"
)

// Labels and annotations the EndpointSlice controller reads and writes.
const (
	// LabelServiceName links an EndpointSlice to its Service.
	LabelServiceName = discoveryv1.LabelServiceName
	// LabelManagedBy names the controller that owns an EndpointSlice.
	LabelManagedBy = discoveryv1.LabelManagedBy
	// ManagedByController is the value the EndpointSlice controller writes into LabelManagedBy.
	ManagedByController = "endpointslice-controller.k8s.io"
	// AnnotationTopologyMode is the Service annotation enabling topology-aware routing.
	AnnotationTopologyMode = corev1.AnnotationTopologyMode
	// maxEndpointsPerSlice is the controller's default --max-endpoints-per-slice.
	maxEndpointsPerSlice = 100
)

// DeriveEndpointSlices adds, for every Service with a selector and no EndpointSlice of its
// own (label kubernetes.io/service-name), the EndpointSlices the EndpointSlice controller
// (kube-controller-manager, v1.35) would create from objs.Pods:
//
//   - one slice per address family of the Service (spec.ipFamilies) and per distinct port
//     mapping, at most 100 endpoints each, endpoints ordered by pod name;
//   - name `<service>-<suffix>`: the controller uses generateName, so the API server picks
//     5 random characters; knet derives them from a hash of namespace, Service, family and
//     slice index so output is reproducible;
//   - labels kubernetes.io/service-name, endpointslice.kubernetes.io/managed-by and the
//     Service's own labels; addressType IPv4|IPv6;
//   - ports: one per Service port, name and protocol copied, port = targetPort resolved
//     against the pod's container ports when it is a name (pods where a named port does not
//     resolve get no port entry for it, as podutil.FindPort fails there);
//   - pods are included when they have an IP of the family, are not Succeeded/Failed and
//     are scheduled; conditions: serving = PodReady condition true, terminating =
//     deletionTimestamp set, ready = (serving or spec.publishNotReadyAddresses) and not
//     terminating;
//   - nodeName from the pod, zone from the Node's topology.kubernetes.io/zone label;
//   - hints: with annotation service.kubernetes.io/topology-mode: Auto (or spec.trafficDistribution
//     PreferClose/PreferSameZone) each endpoint is hinted for its own zone when every
//     endpoint has a zone; PreferSameNode adds a node hint too. The real controller's Auto
//     mode allocates zones in proportion to node CPU and may drop hints when endpoints are too
//     few per zone; knet does the same-zone allocation, which is what the controller produces
//     when endpoints are spread evenly.
//
// Services of type ExternalName and headless Services without a selector are left alone.
func DeriveEndpointSlices(objs *Objects) {
	has := map[string]bool{}
	for _, es := range objs.EndpointSlices {
		if n := es.Labels[LabelServiceName]; n != "" {
			has[es.Namespace+"/"+n] = true
		}
	}
	zones := map[string]string{}
	for _, n := range objs.Nodes {
		zones[n.Name] = n.Labels[corev1.LabelTopologyZone]
	}
	pods := append([]*corev1.Pod(nil), objs.Pods...)
	sort.SliceStable(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for _, svc := range objs.Services {
		if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName || has[svc.Namespace+"/"+svc.Name] {
			continue
		}
		objs.EndpointSlices = append(objs.EndpointSlices, deriveForService(svc, pods, zones)...)
	}
}

func deriveForService(svc *corev1.Service, pods []*corev1.Pod, zones map[string]string) []*discoveryv1.EndpointSlice {
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	mode := svc.Annotations[AnnotationTopologyMode]
	if mode == "" {
		mode = svc.Annotations[corev1.DeprecatedAnnotationTopologyAwareHints]
	}
	zoneHints := strings.EqualFold(mode, "auto")
	nodeHints := false
	if td := svc.Spec.TrafficDistribution; td != nil {
		switch *td {
		case corev1.ServiceTrafficDistributionPreferClose, "PreferSameZone":
			zoneHints = true
		case "PreferSameNode":
			zoneHints, nodeHints = true, true
		}
	}
	var out []*discoveryv1.EndpointSlice
	for _, fam := range families {
		addrType := discoveryv1.AddressTypeIPv4
		if fam == corev1.IPv6Protocol {
			addrType = discoveryv1.AddressTypeIPv6
		}
		type group struct {
			key       string
			ports     []discoveryv1.EndpointPort
			endpoints []discoveryv1.Endpoint
		}
		var groups []*group
		byKey := map[string]*group{}
		for _, pod := range pods {
			if pod.Namespace != svc.Namespace || !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.Spec.NodeName == "" {
				continue
			}
			ip := podIPOfFamily(pod, fam)
			if ip == "" {
				continue
			}
			ports := endpointPorts(svc, pod)
			key := portsKey(ports)
			g := byKey[key]
			if g == nil {
				g = &group{key: key, ports: ports}
				byKey[key] = g
				groups = append(groups, g)
			}
			serving := podReady(pod)
			terminating := pod.DeletionTimestamp != nil
			ready := (serving || svc.Spec.PublishNotReadyAddresses) && !terminating
			ep := discoveryv1.Endpoint{
				Addresses: []string{ip},
				Conditions: discoveryv1.EndpointConditions{
					Ready: &ready, Serving: &serving, Terminating: &terminating,
				},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
			}
			if pod.Spec.NodeName != "" {
				n := pod.Spec.NodeName
				ep.NodeName = &n
				if z := zones[n]; z != "" {
					ep.Zone = &z
				}
			}
			g.endpoints = append(g.endpoints, ep)
		}
		if len(groups) == 0 {
			// The controller keeps one empty "placeholder" slice for a selector matching nothing.
			groups = append(groups, &group{ports: nil})
		}
		for _, g := range groups {
			if zoneHints {
				addHints(g.endpoints, nodeHints)
			}
			for start := 0; start == 0 || start < len(g.endpoints); start += maxEndpointsPerSlice {
				end := min(start+maxEndpointsPerSlice, len(g.endpoints))
				lbls := map[string]string{}
				for k, v := range svc.Labels {
					lbls[k] = v
				}
				lbls[LabelServiceName] = svc.Name
				lbls[LabelManagedBy] = ManagedByController
				es := &discoveryv1.EndpointSlice{
					TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
					ObjectMeta: metav1.ObjectMeta{
						Name:         svc.Name + "-" + sliceSuffix(svc, string(fam), len(out)),
						GenerateName: svc.Name + "-",
						Namespace:    svc.Namespace,
						Labels:       lbls,
					},
					AddressType: addrType,
					Endpoints:   g.endpoints[start:end],
					Ports:       g.ports,
				}
				out = append(out, es)
			}
		}
	}
	return out
}

// addHints hints every endpoint for its own zone (and node), but only when all have a zone,
// as the controller drops hints otherwise.
func addHints(eps []discoveryv1.Endpoint, node bool) {
	for _, ep := range eps {
		if ep.Zone == nil {
			return
		}
	}
	for i := range eps {
		h := &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: *eps[i].Zone}}}
		if node && eps[i].NodeName != nil {
			h.ForNodes = []discoveryv1.ForNode{{Name: *eps[i].NodeName}}
		}
		eps[i].Hints = h
	}
}

func sliceSuffix(svc *corev1.Service, fam string, idx int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%s/%d", svc.Namespace, svc.Name, fam, idx)))
	return strings.ToLower(base32.StdEncoding.EncodeToString(h[:]))[:5]
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podIPOfFamily(pod *corev1.Pod, fam corev1.IPFamily) string {
	ips := []string{}
	for _, p := range pod.Status.PodIPs {
		ips = append(ips, p.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
	}
	for _, s := range ips {
		ip := netutils.ParseIPSloppy(s)
		if ip == nil {
			continue
		}
		if (ip.To4() != nil) == (fam == corev1.IPv4Protocol) {
			return ip.String()
		}
	}
	return ""
}

// endpointPorts resolves the Service's ports against pod (podutil.FindPort).
func endpointPorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		port, ok := findPort(pod, sp)
		if !ok {
			continue
		}
		name := sp.Name
		proto := sp.Protocol
		p := int32(port)
		ep := discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &p}
		if sp.AppProtocol != nil {
			ap := *sp.AppProtocol
			ep.AppProtocol = &ap
		}
		out = append(out, ep)
	}
	return out
}

func findPort(pod *corev1.Pod, sp corev1.ServicePort) (int, bool) {
	tp := sp.TargetPort
	switch tp.Type {
	case intstr.String:
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && cp.Protocol == sp.Protocol {
					return int(cp.ContainerPort), true
				}
			}
		}
		return 0, false
	default:
		if tp.IntVal == 0 {
			return int(sp.Port), true
		}
		return int(tp.IntVal), true
	}
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%s/%d;", *p.Name, *p.Protocol, *p.Port)
	}
	return b.String()
}
