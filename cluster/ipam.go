package cluster

// IPAM: which pod block each node owns, the CNI's tunnel address and every pod's IP.
//
// Blocks. A node's `podCIDR` in the cluster file wins. Nodes without one get a block of
// cni.blockSize from the cluster podCIDR, in node order, after every explicit block is taken:
//
//   - Calico (libcalico-go lib/ipam `randomBlockGenerator`, v3.x): the pool's blocks are
//     walked from a pseudo-random start, `rand.New(rand.NewSource(int64(fnv32(hostname))))`
//     then `big.Int.Rand(numBlocks)`, forward and wrapping, to the first free block. (Calico
//     ignores node.spec.podCIDR; knet writes the block there so `kubectl get nodes` shows it.)
//   - kube-router and Flannel use node.spec.podCIDR from kube-controller-manager's range
//     allocator (pkg/controller/nodeipam/ipam/cidrset): the lowest free block.
//
// Tunnel address. Calico IPIP/VXLAN: calico-node claims one address from the node's block
// when it starts, before any pod (node/pkg/allocateip `assignHostTunnelAddr`), so it gets
// ordinal 0, the block's network address (10.0.7.0). Flannel vxlan: `flannel.1` carries the
// lease's network address /32. kube-router and Calico Never: none.
//
// Pods. Pods that give status.podIP keep it. The others get addresses in the order of
// (namespace, name) of the pods on their node:
//
//   - Calico: the lowest free ordinal of the block (after the tunnel address): .1, .2, …
//     (Calico hands out ordinals from the front of the block's unallocated list);
//   - bridge + host-local (kube-router, Flannel): the gateway is .1, pods get .2, .3, …
//     (host-local's range starts at subnet+1, the gateway is reserved).
//
// hostNetwork pods get the node's IP. Pods without spec.nodeName are scheduled round-robin
// over the worker nodes (all nodes if there are no workers) in (namespace, name) order.

import (
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// blockCount is the number of /bits blocks in pool.
func blockCount(pool netip.Prefix, bits int) uint64 {
	return uint64(1) << uint(bits-pool.Bits())
}

// nthBlock is the i-th /bits block of pool.
func nthBlock(pool netip.Prefix, bits int, i uint64) netip.Prefix {
	base := addrToU32(pool.Masked().Addr())
	size := uint64(1) << uint(32-bits)
	return netip.PrefixFrom(u32ToAddr(uint32(uint64(base)+i*size)), bits)
}

func addrToU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CalicoBlockStart is the index of the first block Calico tries for hostname in a pool of
// numBlocks blocks (libcalico-go `randomBlockGenerator`).
func CalicoBlockStart(hostname string, numBlocks uint64) uint64 {
	h := fnv.New32()
	h.Write([]byte(hostname))
	r := rand.New(rand.NewSource(int64(h.Sum32())))
	return new(big.Int).Rand(r, new(big.Int).SetUint64(numBlocks)).Uint64()
}

// assignBlocks fills Node.PodCIDR for nodes that have none.
func (c *Cluster) assignBlocks() error {
	if !c.PodCIDR.Addr().Is4() {
		return fmt.Errorf("podCIDR %s: only IPv4 pod networks are modelled", c.PodCIDR)
	}
	taken := map[netip.Prefix]string{}
	for _, n := range c.Nodes {
		if n.PodCIDR.IsValid() {
			if other, dup := taken[n.PodCIDR]; dup {
				return fmt.Errorf("nodes %s and %s both claim pod block %s", other, n.Name, n.PodCIDR)
			}
			taken[n.PodCIDR] = n.Name
		}
	}
	num := blockCount(c.PodCIDR, c.CNI.BlockSize)
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.PodCIDR.IsValid() {
			continue
		}
		start := uint64(0)
		if c.CNI.Plugin == CNICalico {
			start = CalicoBlockStart(n.Name, num)
		}
		found := false
		for k := uint64(0); k < num; k++ {
			b := nthBlock(c.PodCIDR, c.CNI.BlockSize, (start+k)%num)
			if _, t := taken[b]; !t {
				n.PodCIDR, found = b, true
				taken[b] = n.Name
				break
			}
		}
		if !found {
			return fmt.Errorf("node %s: no free /%d block left in podCIDR %s", n.Name, c.CNI.BlockSize, c.PodCIDR)
		}
	}
	return nil
}

// hasTunnelAddr says whether the CNI puts an address from the node's block on a tunnel device.
func (c *Cluster) hasTunnelAddr() bool {
	switch c.CNI.Plugin {
	case CNICalico:
		return c.CNI.Mode != CalicoNever
	case CNIFlannel:
		return c.CNI.Mode == FlannelVXLAN
	}
	return false
}

// BridgeGateway is the pod gateway on the node's bridge (kube-bridge, cni0): the block's first
// address (containernetworking/plugins bridge `calcGatewayIP`).
func BridgeGateway(block netip.Prefix) netip.Addr { return block.Masked().Addr().Next() }

// assignPodIPs schedules unscheduled pods, fills the tunnel addresses and every pod's IP.
func (c *Cluster) assignPodIPs() error {
	pods := append([]*corev1.Pod(nil), c.Objects.Pods...)
	sort.SliceStable(pods, func(i, j int) bool { return podKey(pods[i]) < podKey(pods[j]) })

	byName := map[string]*Node{}
	var workers []string
	for i := range c.Nodes {
		byName[c.Nodes[i].Name] = &c.Nodes[i]
		if c.Nodes[i].Role == RoleWorker {
			workers = append(workers, c.Nodes[i].Name)
		}
	}
	if len(workers) == 0 {
		for _, n := range c.Nodes {
			workers = append(workers, n.Name)
		}
	}
	next := 0
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			p.Spec.NodeName = workers[next%len(workers)]
			next++
		}
		if byName[p.Spec.NodeName] == nil {
			return fmt.Errorf("pod %s: spec.nodeName %q is not a node of the cluster", podKey(p), p.Spec.NodeName)
		}
	}

	// Addresses in use per node block: explicit pod IPs first.
	used := map[netip.Addr]string{}
	for _, p := range pods {
		if p.Spec.HostNetwork || p.Status.PodIP == "" {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			return fmt.Errorf("pod %s: status.podIP: %w", podKey(p), err)
		}
		if !c.PodCIDR.Contains(ip) {
			return fmt.Errorf("pod %s: status.podIP %s is outside the cluster podCIDR %s", podKey(p), ip, c.PodCIDR)
		}
		if other, dup := used[ip]; dup {
			return fmt.Errorf("pods %s and %s both have IP %s", other, podKey(p), ip)
		}
		used[ip] = podKey(p)
	}
	bridge := c.CNI.Plugin == CNIKubeRouter || c.CNI.Plugin == CNIFlannel
	cursor := map[string]netip.Addr{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		first := n.PodCIDR.Masked().Addr()
		if bridge {
			gw := BridgeGateway(n.PodCIDR)
			if other, dup := used[gw]; dup {
				return fmt.Errorf("pod %s: IP %s is node %s's bridge gateway", other, gw, n.Name)
			}
			used[gw] = "gateway of " + n.Name
		}
		if c.hasTunnelAddr() {
			if c.CNI.Plugin == CNIFlannel {
				// flannel.1 carries the lease's network address; it is not handed out by host-local.
				n.TunnelIP = first
			} else {
				a, err := nextFree(n.PodCIDR, first, used, false)
				if err != nil {
					return fmt.Errorf("node %s: tunnel address: %w", n.Name, err)
				}
				n.TunnelIP = a
				used[a] = "tunnel of " + n.Name
			}
		}
		switch {
		case bridge:
			cursor[n.Name] = first.Next().Next()
		default:
			cursor[n.Name] = first
		}
	}
	for _, p := range pods {
		n := byName[p.Spec.NodeName]
		if p.Spec.HostNetwork {
			p.Status.PodIP = n.IP.String()
			p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
			continue
		}
		if p.Status.PodIP != "" {
			if len(p.Status.PodIPs) == 0 {
				p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
			}
			continue
		}
		a, err := nextFree(n.PodCIDR, cursor[n.Name], used, bridge)
		if err != nil {
			return fmt.Errorf("pod %s on node %s: %w", podKey(p), n.Name, err)
		}
		used[a] = podKey(p)
		cursor[n.Name] = a.Next()
		p.Status.PodIP = a.String()
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	return nil
}

// nextFree is the first address of block at or after from that is not used (bridge: the
// broadcast address is never handed out; Calico pods are /32s and may get it).
func nextFree(block netip.Prefix, from netip.Addr, used map[netip.Addr]string, bridge bool) (netip.Addr, error) {
	last := u32ToAddr(addrToU32(block.Masked().Addr()) | (uint32(1)<<uint(32-block.Bits()) - 1))
	for a := from; block.Contains(a); a = a.Next() {
		if _, u := used[a]; !u && (!bridge || a != last) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod block %s is full", block)
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
