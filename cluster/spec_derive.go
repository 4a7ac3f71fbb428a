package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// What derived Node objects report in status.nodeInfo (kubectl get nodes -o wide). Stated
// defaults: an Ubuntu 24.04 AWS node with containerd 2.1.
const (
	DefaultOSImage          = "Ubuntu 24.04.3 LTS"
	DefaultKernelVersion    = "6.14.0-1015-aws"
	DefaultContainerRuntime = "containerd://2.1.4"
)

// Node labels knet derives.
const (
	LabelNodeRolePrefix = "node-role.kubernetes.io/"
	LabelHostname       = corev1.LabelHostname
	LabelZone           = corev1.LabelTopologyZone
	LabelRegion         = corev1.LabelTopologyRegion
)

// complete fills what the cluster file leaves implicit (see LoadCluster).
func (c *Cluster) complete(file string) error {
	if err := c.assignBlocks(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := c.assignPodIPs(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := c.deriveNodes(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, p := range c.Objects.Pods {
		c.completePod(p)
	}
	if err := c.deriveKubernetesService(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, s := range c.Objects.Services {
		if s.CreationTimestamp.IsZero() {
			s.CreationTimestamp = metav1.NewTime(c.Created)
		}
		if s.UID == "" {
			s.UID = objectUID("Service", s.Namespace, s.Name)
		}
	}
	ApplyDefaults(&c.Objects)
	DeriveEndpointSlices(&c.Objects)
	for _, es := range c.Objects.EndpointSlices {
		if es.CreationTimestamp.IsZero() {
			es.CreationTimestamp = metav1.NewTime(c.Created)
		}
	}
	c.sortObjects()
	c.Reindex()
	return nil
}

// NodeByName returns the named node, nil if there is none.
func (c *Cluster) NodeByName(name string) *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

// PodsOn returns the pods scheduled on node, in (namespace, name) order. It uses the index
// LoadCluster builds (see Reindex) while Objects.Pods still has the length it was built
// for, else scans. Safe for concurrent use when nobody changes the cluster.
func (c *Cluster) PodsOn(node string) []*corev1.Pod {
	if c.podIndex != nil && c.podIndexLen == len(c.Objects.Pods) {
		return append([]*corev1.Pod(nil), c.podIndex[node]...)
	}
	var out []*corev1.Pod
	for _, p := range c.Objects.Pods {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return podKey(out[i]) < podKey(out[j]) })
	return out
}

// Reindex rebuilds the pods-by-node index PodsOn uses; call it after changing
// Objects.Pods or a pod's spec.nodeName.
func (c *Cluster) Reindex() {
	idx := map[string][]*corev1.Pod{}
	for _, p := range c.Objects.Pods {
		idx[p.Spec.NodeName] = append(idx[p.Spec.NodeName], p)
	}
	for _, ps := range idx {
		sort.SliceStable(ps, func(i, j int) bool { return podKey(ps[i]) < podKey(ps[j]) })
	}
	c.podIndex, c.podIndexLen = idx, len(c.Objects.Pods)
}

// objectUID is a stable UID for an object: a name-based (SHA-1) UUID of kind/namespace/name.
func objectUID(kind, ns, name string) types.UID {
	return types.UID(uuid.NewSHA1(uuid.NameSpaceOID, []byte("knet/"+kind+"/"+ns+"/"+name)).String())
}

// ContainerID is the 64-hex-digit runtime ID knet gives a pod's container (or, with
// container "", its sandbox): sha256 of the pod identity, stable across runs.
func ContainerID(ns, pod, container string) string {
	sum := sha256.Sum256([]byte("knet/" + ns + "/" + pod + "/" + container))
	return hex.EncodeToString(sum[:])
}

// imageID is the digest reference containerd reports for an image: the repository plus a
// sha256 digest (knet hashes the reference).
func imageID(image string) string {
	repo := image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	sum := sha256.Sum256([]byte("knet-image/" + image))
	return repo + "@sha256:" + hex.EncodeToString(sum[:])
}

func (c *Cluster) deriveNodes() error {
	given := map[string]*corev1.Node{}
	for _, n := range c.Objects.Nodes {
		if c.NodeByName(n.Name) == nil {
			return fmt.Errorf("Node object %q is not one of the cluster file's nodes", n.Name)
		}
		given[n.Name] = n
	}
	var out []*corev1.Node
	for _, n := range c.Nodes {
		if g := given[n.Name]; g != nil {
			out = append(out, g)
			continue
		}
		out = append(out, c.nodeObject(n))
	}
	c.Objects.Nodes = out
	return nil
}

// nodeObject is the v1 Node a kubelet of this cluster registers for n.
func (c *Cluster) nodeObject(n Node) *corev1.Node {
	labels := map[string]string{
		"beta.kubernetes.io/arch": "amd64",
		"beta.kubernetes.io/os":   "linux",
		"kubernetes.io/arch":      "amd64",
		"kubernetes.io/os":        "linux",
		LabelHostname:             n.Name,
	}
	if n.Zone != "" {
		labels[LabelZone] = n.Zone
		// AWS zones are the region plus a letter (us-east-1a → us-east-1).
		region := strings.TrimRight(n.Zone, "abcdefghijklmnopqrstuvwxyz")
		if region != "" && region != n.Zone {
			labels[LabelRegion] = region
		}
	}
	if n.Role == RoleControlPlane {
		labels[LabelNodeRolePrefix+RoleControlPlane] = ""
	}
	obj := &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              n.Name,
			UID:               objectUID("Node", "", n.Name),
			CreationTimestamp: metav1.NewTime(c.Created),
			Labels:            labels,
		},
		Spec: corev1.NodeSpec{
			PodCIDR:  n.PodCIDR.String(),
			PodCIDRs: []string{n.PodCIDR.String()},
		},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IP.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message:            "kubelet is posting ready status",
				LastHeartbeatTime:  metav1.NewTime(c.Created),
				LastTransitionTime: metav1.NewTime(c.Created),
			}},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          c.Proxy.Version,
				KubeProxyVersion:        "",
				OSImage:                 DefaultOSImage,
				KernelVersion:           DefaultKernelVersion,
				ContainerRuntimeVersion: DefaultContainerRuntime,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
		},
	}
	if n.Role == RoleControlPlane {
		obj.Spec.Taints = []corev1.Taint{{Key: LabelNodeRolePrefix + RoleControlPlane, Effect: corev1.TaintEffectNoSchedule}}
	}
	return obj
}

// completePod fills the status a running pod reports, where the file leaves it empty.
func (c *Cluster) completePod(p *corev1.Pod) {
	if p.APIVersion == "" {
		p.APIVersion, p.Kind = "v1", "Pod"
	}
	if p.CreationTimestamp.IsZero() {
		p.CreationTimestamp = metav1.NewTime(c.Created)
	}
	if p.UID == "" {
		p.UID = objectUID("Pod", p.Namespace, p.Name)
	}
	if n := c.NodeByName(p.Spec.NodeName); n != nil && p.Status.HostIP == "" {
		p.Status.HostIP = n.IP.String()
		p.Status.HostIPs = []corev1.HostIP{{IP: p.Status.HostIP}}
	}
	if p.Status.Phase == "" {
		p.Status.Phase = corev1.PodRunning
	}
	if p.Status.StartTime == nil {
		t := p.CreationTimestamp
		p.Status.StartTime = &t
	}
	if len(p.Status.Conditions) == 0 && p.Status.Phase == corev1.PodRunning {
		for _, t := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
				Type: t, Status: corev1.ConditionTrue, LastTransitionTime: p.CreationTimestamp,
			})
		}
	}
	if len(p.Status.ContainerStatuses) == 0 && p.Status.Phase == corev1.PodRunning {
		for _, ct := range p.Spec.Containers {
			started := true
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
				Name:        ct.Name,
				Image:       ct.Image,
				ImageID:     imageID(ct.Image),
				ContainerID: "containerd://" + ContainerID(p.Namespace, p.Name, ct.Name),
				Ready:       true,
				Started:     &started,
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: p.CreationTimestamp}},
			})
		}
	}
	if p.Spec.RestartPolicy == "" {
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
}

// deriveKubernetesService adds default/kubernetes (first address of the Service CIDR, port
// https 443 → the control-plane nodes' :6443) and its EndpointSlice when absent, as the API
// server's reconcilers do.
func (c *Cluster) deriveKubernetesService() error {
	hasSvc, hasSlice := false, false
	for _, s := range c.Objects.Services {
		if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			hasSvc = true
		}
	}
	for _, es := range c.Objects.EndpointSlices {
		if es.Namespace == metav1.NamespaceDefault && es.Labels[discoveryv1.LabelServiceName] == "kubernetes" {
			hasSlice = true
		}
	}
	if !hasSvc {
		ip := c.ServiceCIDR.Masked().Addr().Next()
		if !c.ServiceCIDR.Contains(ip) {
			return fmt.Errorf("serviceCIDR %s has no room for the kubernetes Service", c.ServiceCIDR)
		}
		single := corev1.IPFamilyPolicySingleStack
		c.Objects.Services = append(c.Objects.Services, &corev1.Service{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{
				Name: "kubernetes", Namespace: metav1.NamespaceDefault,
				Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"},
			},
			Spec: corev1.ServiceSpec{
				Type:           corev1.ServiceTypeClusterIP,
				ClusterIP:      ip.String(),
				ClusterIPs:     []string{ip.String()},
				IPFamilies:     []corev1.IPFamily{corev1.IPv4Protocol},
				IPFamilyPolicy: &single,
				Ports: []corev1.ServicePort{{
					Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(6443),
				}},
				SessionAffinity: corev1.ServiceAffinityNone,
			},
		})
	}
	if !hasSlice {
		var eps []discoveryv1.Endpoint
		for _, n := range c.Nodes {
			if n.Role == RoleControlPlane {
				ready := true
				eps = append(eps, discoveryv1.Endpoint{Addresses: []string{n.IP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
			}
		}
		if len(eps) == 0 {
			c.Notes = append(c.Notes, Note{Message: "no control-plane node: the kubernetes Service has no endpoints"})
		}
		name, proto, port := "https", corev1.ProtocolTCP, int32(6443)
		c.Objects.EndpointSlices = append(c.Objects.EndpointSlices, &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{
				Name: "kubernetes", Namespace: metav1.NamespaceDefault,
				Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   eps,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
		})
	}
	return nil
}

func (c *Cluster) sortObjects() {
	o := &c.Objects
	sort.SliceStable(o.Services, func(i, j int) bool {
		return o.Services[i].Namespace+"/"+o.Services[i].Name < o.Services[j].Namespace+"/"+o.Services[j].Name
	})
	sort.SliceStable(o.EndpointSlices, func(i, j int) bool {
		return o.EndpointSlices[i].Namespace+"/"+o.EndpointSlices[i].Name < o.EndpointSlices[j].Namespace+"/"+o.EndpointSlices[j].Name
	})
	sort.SliceStable(o.Pods, func(i, j int) bool { return podKey(o.Pods[i]) < podKey(o.Pods[j]) })
}
