package cluster

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPresetNames(t *testing.T) {
	if d := cmp.Diff([]string{"cluster-a", "cluster-b", "cluster-c"}, PresetNames()); d != "" {
		t.Errorf("PresetNames (-want +got):\n%s", d)
	}
	if _, err := Preset("cluster-z"); err == nil || !strings.Contains(err.Error(), "cluster-a, cluster-b, cluster-c") {
		t.Errorf("unknown preset error %v does not list the presets", err)
	}
	if _, err := Preset("workloads"); err == nil {
		t.Errorf("the shared workloads file loaded as a preset")
	}
}

// TestPresetsSeedFacts checks the facts the seed states about clusters A, B and C.
func TestPresetsSeedFacts(t *testing.T) {
	choice := map[string]string{
		"cluster-a": "calico IPIPCrossSubnet ipvs",
		"cluster-b": "calico IPIPAlways iptables",
		"cluster-c": "kube-router overlay-subnet iptables",
	}
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			c, err := Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%s %s %s", c.CNI.Plugin, c.CNI.Mode, c.Proxy.Mode); got != choice[name] {
				t.Errorf("choice %q, want %q", got, choice[name])
			}
			if c.ServiceCIDR.String() != "10.1.0.0/16" {
				t.Errorf("service CIDR %s", c.ServiceCIDR)
			}
			subnets, zones := map[string]bool{}, map[string]bool{}
			blocks := map[string]string{}
			var cps []string
			for _, n := range c.Nodes {
				subnets[n.Subnet.String()], zones[n.Zone] = true, true
				blocks[n.PodCIDR.String()] = n.Name
				if n.Role == RoleControlPlane {
					cps = append(cps, n.IP.String())
				}
			}
			if len(subnets) < 2 || len(zones) < 2 || len(cps) == 0 {
				t.Errorf("want nodes in ≥2 subnets/zones with a control plane: subnets %v zones %v control planes %v", subnets, zones, cps)
			}
			for _, b := range []string{"10.0.7.0/24", "10.0.104.0/24", "10.0.11.0/24", "10.0.35.0/24"} {
				if blocks[b] == "" {
					t.Errorf("no node owns the seed's block %s", b)
				}
			}

			svcs := map[string]string{}
			for _, s := range c.Objects.Services {
				var ports []string
				for _, p := range s.Spec.Ports {
					ports = append(ports, fmt.Sprintf("%d/%s:%d", p.Port, p.Protocol, p.NodePort))
				}
				svcs[s.Namespace+"/"+s.Name] = s.Spec.ClusterIP + " " + strings.Join(ports, ",")
			}
			wantSvcs := map[string]string{
				"default/kubernetes":                     "10.1.0.1 443/TCP:0",
				"kube-system/kube-dns":                   "10.1.0.10 53/UDP:0,53/TCP:0,9153/TCP:0",
				"ingress-nginx/ingress-nginx-controller": "10.1.60.159 80/TCP:30998,443/TCP:31342",
				"default/web":                            "10.1.120.34 80/TCP:0",
				"default/api":                            "10.1.84.17 8080/TCP:0",
			}
			if d := cmp.Diff(wantSvcs, svcs); d != "" {
				t.Errorf("services (-want +got):\n%s", d)
			}

			eps := map[string][]string{}
			for _, es := range c.Objects.EndpointSlices {
				svc := es.Namespace + "/" + es.Labels["kubernetes.io/service-name"]
				for _, e := range es.Endpoints {
					for _, a := range e.Addresses {
						for _, p := range es.Ports {
							want := map[string]string{"kubernetes": "https", "kube-dns": "dns", "ingress-nginx-controller": "http"}[es.Labels["kubernetes.io/service-name"]]
							if p.Name != nil && *p.Name == want {
								eps[svc] = append(eps[svc], fmt.Sprintf("%s:%d", a, *p.Port))
							}
						}
					}
				}
				sort.Strings(eps[svc])
			}
			var wantAPI []string
			for _, ip := range cps {
				wantAPI = append(wantAPI, ip+":6443")
			}
			sort.Strings(wantAPI)
			if d := cmp.Diff(wantAPI, eps["default/kubernetes"]); d != "" {
				t.Errorf("kubernetes endpoints (-want +got):\n%s", d)
			}
			if d := cmp.Diff([]string{"10.0.11.26:80", "10.0.11.27:80", "10.0.35.21:80"}, eps["ingress-nginx/ingress-nginx-controller"]); d != "" {
				t.Errorf("ingress endpoints (-want +got):\n%s", d)
			}
			if n := len(eps["kube-system/kube-dns"]); n != 2 {
				t.Errorf("kube-dns has %d endpoints, want the two CoreDNS pods", n)
			}
			// The ingress pods live in the blocks 10.0.11.0/24 and 10.0.35.0/24.
			for _, p := range c.Objects.Pods {
				if p.Namespace == "ingress-nginx" {
					n := c.NodeByName(p.Spec.NodeName)
					if !strings.HasPrefix(p.Status.PodIP, strings.TrimSuffix(n.PodCIDR.Masked().Addr().String(), "0")) {
						t.Errorf("pod %s IP %s is not in its node's block %s", p.Name, p.Status.PodIP, n.PodCIDR)
					}
				}
			}
		})
	}
}
