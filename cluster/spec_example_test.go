package cluster_test

import (
	"fmt"

	"github.com/knet-dev/knet/cluster"
)

// A cluster file: two nodes in two subnets, Calico IPIP CrossSubnet, one pod. Node objects,
// the kubernetes Service, the pod's IP and the Calico tunnel addresses are derived.
func ExampleParseCluster() {
	file := []byte(`apiVersion: knet.dev/v1alpha1
kind: Cluster
metadata: {name: demo}
podCIDR: 10.0.0.0/16
serviceCIDR: 10.1.0.0/16
cni: {plugin: calico, mode: IPIPCrossSubnet, blockSize: 24}
kubeProxy: {mode: iptables}
nodes:
- {name: cp, ip: 172.31.1.10, subnet: 172.31.0.0/20, zone: us-east-1a, role: control-plane, podCIDR: 10.0.1.0/24}
- {name: w1, ip: 172.31.17.10, subnet: 172.31.16.0/20, zone: us-east-1b, podCIDR: 10.0.7.0/24}
objects:
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: default}
  spec:
    nodeName: w1
    containers: [{name: nginx, image: nginx}]
`)
	c, err := cluster.ParseCluster(file, "demo.yaml", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range c.Nodes {
		fmt.Println(n.Name, n.Role, n.IP, n.Subnet, n.Gateway, n.PodCIDR, "tunl0", n.TunnelIP)
	}
	for _, p := range c.Objects.Pods {
		fmt.Println("pod", p.Namespace+"/"+p.Name, p.Spec.NodeName, p.Status.PodIP)
	}
	for _, s := range c.Objects.Services {
		fmt.Println("service", s.Namespace+"/"+s.Name, s.Spec.ClusterIP)
	}
	// Output:
	// cp control-plane 172.31.1.10 172.31.0.0/20 172.31.0.1 10.0.1.0/24 tunl0 10.0.1.0
	// w1 worker 172.31.17.10 172.31.16.0/20 172.31.16.1 10.0.7.0/24 tunl0 10.0.7.0
	// pod default/web w1 10.0.7.1
	// service default/kubernetes 10.1.0.1
}
