package live

import (
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/knet-dev/knet/cluster"
)

// The cluster file as cluster.LoadCluster reads it (see cluster/spec.go); keys come out
// sorted (sigs.k8s.io/yaml).
type specOut struct {
	APIVersion  string    `json:"apiVersion"`
	Kind        string    `json:"kind"`
	Metadata    metaOut   `json:"metadata"`
	Description string    `json:"description,omitempty"`
	Created     string    `json:"created,omitempty"`
	PodCIDR     string    `json:"podCIDR"`
	ServiceCIDR string    `json:"serviceCIDR"`
	CNI         cniOut    `json:"cni"`
	KubeProxy   proxyOut  `json:"kubeProxy"`
	Nodes       []nodeOut `json:"nodes"`
	Objects     []any     `json:"objects,omitempty"`
}

type metaOut struct {
	Name string `json:"name"`
}

type cniOut struct {
	Plugin    string `json:"plugin"`
	Mode      string `json:"mode,omitempty"`
	Version   string `json:"version,omitempty"`
	BlockSize int    `json:"blockSize,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
}

type proxyOut struct {
	Mode    string `json:"mode"`
	Version string `json:"version,omitempty"`
	Config  any    `json:"config,omitempty"`
}

type nodeOut struct {
	Name      string `json:"name"`
	IP        string `json:"ip"`
	Subnet    string `json:"subnet"`
	Zone      string `json:"zone,omitempty"`
	Gateway   string `json:"gateway,omitempty"`
	Role      string `json:"role,omitempty"`
	PodCIDR   string `json:"podCIDR,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// WriteCluster writes c as a cluster file (apiVersion knet.dev/v1alpha1, kind Cluster) with
// its objects inline (managedFields dropped) and kube-proxy's configuration under
// kubeProxy.config; cluster.LoadCluster reads it back.
func WriteCluster(w io.Writer, c *cluster.Cluster) error {
	s := specOut{
		APIVersion: cluster.SpecAPIVersion, Kind: cluster.SpecKind, Metadata: metaOut{Name: c.Name},
		Description: c.Description, PodCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(),
		CNI: cniOut{Plugin: string(c.CNI.Plugin), Mode: c.CNI.Mode, Version: c.CNI.Version,
			BlockSize: c.CNI.BlockSize, MTU: c.CNI.MTU},
		KubeProxy: proxyOut{Mode: string(c.Proxy.Mode), Version: c.Proxy.Version},
	}
	if !c.Created.IsZero() {
		s.Created = c.Created.UTC().Format(time.RFC3339)
	}
	for _, n := range c.Nodes {
		o := nodeOut{Name: n.Name, IP: n.IP.String(), Subnet: n.Subnet.String(), Zone: n.Zone,
			Role: n.Role, Interface: n.Interface}
		if n.Gateway.IsValid() {
			o.Gateway = n.Gateway.String()
		}
		if n.PodCIDR.IsValid() {
			o.PodCIDR = n.PodCIDR.String()
		}
		s.Nodes = append(s.Nodes, o)
	}
	if pc := c.Objects.ProxyConfig; pc != nil {
		cp := pc.DeepCopy()
		cp.APIVersion = kubeproxyconfigv1alpha1.SchemeGroupVersion.String()
		cp.Kind = "KubeProxyConfiguration"
		s.KubeProxy.Config = cp
	}
	add := func(o runtime.Object) {
		s.Objects = append(s.Objects, o)
	}
	for _, n := range c.Objects.Nodes {
		n = n.DeepCopy()
		n.ManagedFields = nil
		add(n)
	}
	for _, x := range c.Objects.Services {
		x = x.DeepCopy()
		x.ManagedFields = nil
		add(x)
	}
	for _, x := range c.Objects.EndpointSlices {
		x = x.DeepCopy()
		x.ManagedFields = nil
		add(x)
	}
	for _, x := range c.Objects.Pods {
		x = x.DeepCopy()
		x.ManagedFields = nil
		add(x)
	}
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Errorf("writing cluster file: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing cluster file: %w", err)
	}
	return nil
}
