//go:build linux

// Package lab builds a whole cluster on a real Linux kernel: every node and every pod a
// network namespace (named knet-<cluster>-...), the nodes' uplinks joined on one bridge per
// VPC subnet inside a "fabric" namespace, a "router" namespace between the subnets (so
// cross-subnet traffic is routed, as in an AWS VPC with source/destination checks off) and
// an "outside" namespace behind the router standing for a client outside the cluster. Each
// namespace gets what knet renders for it (render.Node: the CNI's devices, addresses,
// routes, tunnels and sysctls, kube-proxy's iptables rules), applied through package
// kernel. Small servers (TCP, UDP, HTTP and DNS) in every pod answer with the pod's name and
// the source address they saw; Run sends real connections and compares what the kernel did
// with what the model (package trace) predicts.
//
// Everything the lab makes is registered for cleanup as it is made; Down (or Cleanup by
// prefix, which finds leftovers of a crashed run) removes it. The host's own namespace is
// never changed.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/kernel"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/render/cni/hostnet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// OutsideAddr is the address of the client outside the cluster, OutsideGateway the
// router's address on that network (TEST-NET-2, never routed on the Internet).
var (
	OutsidePrefix  = netip.MustParsePrefix("198.51.100.0/24")
	OutsideAddr    = netip.MustParseAddr("198.51.100.10")
	OutsideGateway = netip.MustParseAddr("198.51.100.1")
)

// Prefix is the name prefix of every namespace of cluster name's lab.
func Prefix(clusterName string) string { return "knet-" + clusterName + "-" }

// Lab is a cluster running in namespaces.
type Lab struct {
	Cluster *cluster.Cluster
	// Nodes are the rendered nodes, by name.
	Nodes map[string]*dataplane.Node

	prefix  string
	nsByKey map[string]*kernel.NS
	// cleanup holds undo steps in creation order; Down runs them in reverse.
	cleanup []func() error
	// shadows are the per-node IPVS model states fed the lab's connections.
	shadows map[string]*ipvsShadow
}

// Requirement is a kernel feature a cluster needs, with why.
type Requirement struct {
	Feature kernel.Feature
	Why     string
}

// Requirements lists what the cluster needs from the kernel.
func Requirements(c *cluster.Cluster) []Requirement {
	reqs := []Requirement{
		{kernel.FeatureVeth, "pods and node uplinks are veth pairs"},
		{kernel.FeatureBridge, "each VPC subnet is a bridge"},
		{kernel.FeatureIPTables, "kube-proxy and the CNI program iptables"},
	}
	mode := strings.ToLower(c.CNI.Mode)
	switch {
	case strings.Contains(mode, "ipip") || c.CNI.Plugin == cluster.CNIKubeRouter:
		reqs = append(reqs, Requirement{kernel.FeatureIPIP, fmt.Sprintf("%s %s tunnels pod traffic in IP-in-IP", c.CNI.Plugin, c.CNI.Mode)})
	case strings.Contains(mode, "vxlan"):
		reqs = append(reqs, Requirement{kernel.FeatureVXLAN, fmt.Sprintf("%s %s tunnels pod traffic in VXLAN", c.CNI.Plugin, c.CNI.Mode)})
	}
	if c.Proxy.Mode == cluster.ProxyIPVS {
		reqs = append(reqs,
			Requirement{kernel.FeatureDummy, "kube-proxy IPVS mode binds Service addresses to the dummy kube-ipvs0"},
			Requirement{kernel.FeatureIPVS, "kube-proxy IPVS mode load-balances with IPVS"})
	}
	return reqs
}

// Missing probes each requirement and returns the unmet ones with the probe's error.
func Missing(c *cluster.Cluster) []error {
	var out []error
	for _, r := range Requirements(c) {
		if err := kernel.Probe(r.Feature); err != nil {
			out = append(out, fmt.Errorf("%s (%s): %w", r.Feature, r.Why, err))
		}
	}
	return out
}

func (l *Lab) nsName(kind, name string) string {
	name = strings.NewReplacer("/", "-", ".", "-").Replace(name)
	if name == "" {
		return l.prefix + kind
	}
	return l.prefix + kind + "-" + name
}

// NS returns a namespace of the lab: "fabric", "router", "outside", "node/NAME" or
// "pod/NAMESPACE/NAME".
func (l *Lab) NS(key string) (*kernel.NS, bool) {
	ns, ok := l.nsByKey[key]
	return ns, ok
}

func (l *Lab) newNS(key, kind, name string) (*kernel.NS, error) {
	ns, err := kernel.NewNS(l.nsName(kind, name))
	if err != nil {
		return nil, err
	}
	l.nsByKey[key] = ns
	l.cleanup = append(l.cleanup, ns.Delete)
	return ns, nil
}

// Up builds cluster c's lab. On error or cancellation everything made so far is removed.
// Progress goes to log (may be nil).
func Up(ctx context.Context, c *cluster.Cluster, log io.Writer) (_ *Lab, err error) {
	l := &Lab{Cluster: c, Nodes: map[string]*dataplane.Node{}, prefix: Prefix(c.Name), nsByKey: map[string]*kernel.NS{}}
	if left, _ := kernel.ListNamedNS(l.prefix); len(left) > 0 {
		return nil, fmt.Errorf("lab %s: namespaces of an earlier lab remain (%s ...): run `knet lab down` first", c.Name, left[0])
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
		}
	}()
	nodes, err := render.Cluster(c)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", c.Name, err)
	}
	for _, n := range nodes {
		l.Nodes[n.Name] = n
	}
	logf(log, "lab %s: %d nodes rendered", c.Name, len(nodes))
	if err := l.fabric(ctx); err != nil {
		return nil, fmt.Errorf("lab %s: fabric: %w", c.Name, err)
	}
	for i, cn := range c.Nodes {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lab %s: %w", c.Name, err)
		}
		if err := l.node(ctx, i, cn); err != nil {
			return nil, fmt.Errorf("lab %s: node %s: %w", c.Name, cn.Name, err)
		}
		logf(log, "lab %s: node %s up with %d pods", c.Name, cn.Name, len(l.Nodes[cn.Name].Pods))
	}
	return l, nil
}

// subnets returns the cluster's node subnets, sorted.
func subnets(c *cluster.Cluster) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, n := range c.Nodes {
		if !seen[n.Subnet] {
			seen[n.Subnet] = true
			out = append(out, n.Subnet)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr().Less(out[j].Addr()) })
	return out
}

// fabric makes the fabric (one bridge per subnet), the router (the subnets' gateways) and
// the outside client.
func (l *Lab) fabric(ctx context.Context) error {
	fab, err := l.newNS("fabric", "fabric", "")
	if err != nil {
		return err
	}
	rt, err := l.newNS("router", "router", "")
	if err != nil {
		return err
	}
	out, err := l.newNS("outside", "outside", "")
	if err != nil {
		return err
	}
	fh, err := netlink.NewHandleAt(fab.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer fh.Close()
	rh, err := netlink.NewHandleAt(rt.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer rh.Close()
	for _, h := range []*netlink.Handle{fh, rh} {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := h.LinkSetUp(lo); err != nil {
			return err
		}
	}
	gateways := map[netip.Prefix]netip.Addr{}
	for _, n := range l.Cluster.Nodes {
		if n.Gateway.IsValid() {
			gateways[n.Subnet] = n.Gateway
		}
	}
	for i, sn := range subnets(l.Cluster) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "s" + strconv.Itoa(i), MTU: mtu(l.Cluster)}}
		if err := fh.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge for %s: %w", sn, err)
		}
		if err := fh.LinkSetUp(br); err != nil {
			return err
		}
		gw, ok := gateways[sn]
		if !ok {
			gw = sn.Masked().Addr().Next()
		}
		// router side r<i> holds the gateway; the fabric side rt<i> is a port of s<i>.
		if err := veth(rh, "r"+strconv.Itoa(i), fab, "rt"+strconv.Itoa(i), mtu(l.Cluster)); err != nil {
			return err
		}
		if err := attach(fh, "rt"+strconv.Itoa(i), br.Name); err != nil {
			return err
		}
		if err := addrUp(rh, "r"+strconv.Itoa(i), netip.PrefixFrom(gw, sn.Bits())); err != nil {
			return err
		}
	}
	// The outside network hangs off the router directly.
	if err := veth(rh, "rx", out, "eth0", 1500); err != nil {
		return err
	}
	if err := addrUp(rh, "rx", netip.PrefixFrom(OutsideGateway, OutsidePrefix.Bits())); err != nil {
		return err
	}
	oh, err := netlink.NewHandleAt(out.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer oh.Close()
	if err := addrUp(oh, "eth0", netip.PrefixFrom(OutsideAddr, OutsidePrefix.Bits())); err != nil {
		return err
	}
	if lo, err := oh.LinkByName("lo"); err == nil {
		oh.LinkSetUp(lo)
	}
	eth0, _ := oh.LinkByName("eth0")
	if err := oh.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: OutsideGateway.AsSlice()}); err != nil {
		return fmt.Errorf("outside default route: %w", err)
	}
	return kernelSysctl(rt, map[string]string{"ipv4/ip_forward": "1"})
}

func kernelSysctl(ns *kernel.NS, m map[string]string) error {
	return kernel.Apply(context.Background(), ns, &dataplane.Node{Name: ns.Name(), Sysctls: m}, kernel.ApplyOptions{})
}

func mtu(c *cluster.Cluster) int {
	if c.CNI.MTU > 0 {
		return c.CNI.MTU
	}
	return 1500
}

// veth makes a veth pair: name in h's namespace, peer in namespace far, both up.
func veth(h *netlink.Handle, name string, far *kernel.NS, peer string, mtu int) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}, PeerName: peer, PeerNamespace: netlink.NsFd(int(far.Handle()))}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("veth %s/%s: %w", name, peer, err)
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	fh, err := netlink.NewHandleAt(far.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer fh.Close()
	pl, err := fh.LinkByName(peer)
	if err != nil {
		return err
	}
	return fh.LinkSetUp(pl)
}

func attach(h *netlink.Handle, port, bridge string) error {
	p, err := h.LinkByName(port)
	if err != nil {
		return err
	}
	b, err := h.LinkByName(bridge)
	if err != nil {
		return err
	}
	if err := h.LinkSetMasterByIndex(p, b.Attrs().Index); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridge, err)
	}
	return h.LinkSetUp(p)
}

func addrUp(h *netlink.Handle, dev string, p netip.Prefix) error {
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(p.String())
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s: %w", p, dev, err)
	}
	return h.LinkSetUp(l)
}

// node makes node i's namespace and its pods' namespaces and applies the rendered model.
func (l *Lab) node(ctx context.Context, i int, cn cluster.Node) error {
	n := l.Nodes[cn.Name]
	if n == nil || n.Net == nil {
		return errors.New("not rendered")
	}
	host, err := l.newNS("node/"+cn.Name, "n", cn.Name)
	if err != nil {
		return err
	}
	uplink := cn.Interface
	if uplink == "" {
		uplink = "eth0"
	}
	fab := l.nsByKey["fabric"]
	port := "n" + strconv.Itoa(i)
	if err := kernel.MakeUplink(host, fab, n.Net.LinkByName(uplink), port); err != nil {
		return err
	}
	fh, err := netlink.NewHandleAt(fab.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer fh.Close()
	sns := subnets(l.Cluster)
	bi := sort.Search(len(sns), func(k int) bool { return !sns[k].Addr().Less(cn.Subnet.Addr()) })
	if err := attach(fh, port, "s"+strconv.Itoa(bi)); err != nil {
		return err
	}
	// Pod namespaces, found by the name the CNI gave them (containerd's cni-<uuid>).
	byCNIName := map[string]*kernel.NS{}
	keys := make([]string, 0, len(n.Pods))
	for k := range n.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pns, pname, _ := strings.Cut(k, "/")
		ns, err := l.newNS("pod/"+k, "p", pns+"-"+pname)
		if err != nil {
			return err
		}
		byCNIName[hostnet.NetNSName(pns, pname)] = ns
		byCNIName[k] = ns
	}
	o := kernel.ApplyOptions{PeerNS: func(name string) (*kernel.NS, error) {
		if ns, ok := byCNIName[name]; ok {
			return ns, nil
		}
		return nil, fmt.Errorf("no pod namespace for %q", name)
	}}
	if err := kernel.Apply(ctx, host, n, o); err != nil {
		return err
	}
	for _, k := range keys {
		if err := kernel.Apply(ctx, l.nsByKey["pod/"+k], n.Pods[k], o); err != nil {
			return fmt.Errorf("pod %s: %w", k, err)
		}
	}
	return nil
}

// Down removes everything the lab made, newest first, and any leftover by prefix.
func (l *Lab) Down() error {
	var errs []error
	for i := len(l.cleanup) - 1; i >= 0; i-- {
		if err := l.cleanup[i](); err != nil {
			errs = append(errs, err)
		}
	}
	l.cleanup = nil
	errs = append(errs, Cleanup(l.prefix))
	return errors.Join(errs...)
}

// Cleanup removes every leftover of labs whose namespaces start with prefix: it kills the
// processes living in those namespaces (a `knet lab serve` left by a crash) and deletes the
// namespaces. Deleting a namespace removes its links (veth peers go with them), addresses,
// routes and rules; nothing of the lab lives in the host namespace.
//
// Equivalent to: `ip netns pids NS | xargs kill; ip netns delete NS` for each NS.
func Cleanup(prefix string) error {
	if !strings.HasPrefix(prefix, "knet-") {
		return fmt.Errorf("cleanup: refusing prefix %q (lab namespaces start with knet-)", prefix)
	}
	names, err := kernel.ListNamedNS(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, pid := range pidsIn(names) {
		if pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	for _, n := range names {
		if err := kernel.DeleteNamedNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pidsIn lists the processes whose network namespace is one of the named ones.
func pidsIn(names []string) []int {
	want := map[uint64]bool{}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(kernel.NetnsDir, n), &st); err == nil {
			want[st.Ino] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err == nil && want[st.Ino] {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// Open attaches to a lab made by an earlier `knet lab up` (for `run` and `serve`).
func Open(c *cluster.Cluster) (*Lab, error) {
	l := &Lab{Cluster: c, Nodes: map[string]*dataplane.Node{}, prefix: Prefix(c.Name), nsByKey: map[string]*kernel.NS{}}
	nodes, err := render.Cluster(c)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", c.Name, err)
	}
	for _, n := range nodes {
		l.Nodes[n.Name] = n
	}
	open := func(key, kind, name string) error {
		ns, err := kernel.GetNS(l.nsName(kind, name))
		if err != nil {
			return fmt.Errorf("lab %s is not up (run `knet lab up`): %w", c.Name, err)
		}
		l.nsByKey[key] = ns
		l.cleanup = append(l.cleanup, ns.Delete)
		return nil
	}
	for _, k := range []string{"fabric", "router", "outside"} {
		if err := open(k, k, ""); err != nil {
			return nil, err
		}
	}
	for _, cn := range c.Nodes {
		if err := open("node/"+cn.Name, "n", cn.Name); err != nil {
			return nil, err
		}
		for k := range l.Nodes[cn.Name].Pods {
			pns, pname, _ := strings.Cut(k, "/")
			if err := open("pod/"+k, "p", pns+"-"+pname); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// Close releases the lab's namespace handles without removing anything (the named
// namespaces stay until Down or Cleanup).
func (l *Lab) Close() error {
	var errs []error
	for _, ns := range l.nsByKey {
		errs = append(errs, ns.Close())
	}
	l.cleanup = nil
	return errors.Join(errs...)
}

// podNSKey returns the lab key of the namespace a pod's processes live in: its own for a
// pod network pod, its node's for a hostNetwork pod.
func podNSKey(p *corev1.Pod) string {
	if p.Spec.HostNetwork {
		return "node/" + p.Spec.NodeName
	}
	return "pod/" + p.Namespace + "/" + p.Name
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// kernelRelease is `uname -r`.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

func kernelListNamed(prefix string) ([]string, error) { return kernel.ListNamedNS(prefix) }
