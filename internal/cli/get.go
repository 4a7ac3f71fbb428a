package cli

import (
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/knet-dev/knet/cluster"
)

// clusterFlags are --preset and -f, shared by the verbs that act on a whole cluster.
type clusterFlags struct {
	preset    string
	file      string
	proxyMode string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.preset, "preset", "", "embedded cluster: "+strings.Join(cluster.PresetNames(), ", "))
	cmd.Flags().StringVarP(&f.file, "filename", "f", "", "cluster file (YAML, see cluster.LoadCluster)")
	cmd.Flags().StringVar(&f.proxyMode, "proxy-mode", "", "run the cluster's kube-proxy in this mode instead: iptables, ipvs or nftables")
}

func (f *clusterFlags) load() (*cluster.Cluster, error) {
	var c *cluster.Cluster
	var err error
	switch {
	case f.preset != "" && f.file != "":
		return nil, errors.New("give either --preset or -f, not both")
	case f.preset != "":
		c, err = cluster.Preset(f.preset)
	case f.file != "":
		c, err = cluster.LoadCluster(f.file)
	default:
		return nil, fmt.Errorf("no cluster: give --preset (%s) or -f CLUSTER.yaml", strings.Join(cluster.PresetNames(), ", "))
	}
	if err != nil || f.proxyMode == "" {
		return c, err
	}
	switch m := cluster.ProxyMode(f.proxyMode); m {
	case cluster.ProxyIPTables, cluster.ProxyIPVS, cluster.ProxyNFTables:
		c.Proxy.Mode = m
		if c.Objects.ProxyConfig != nil {
			c.Objects.ProxyConfig.Mode = kubeproxyconfigv1alpha1.ProxyMode(m)
		}
		return c, nil
	}
	return nil, fmt.Errorf("--proxy-mode %q: want iptables, ipvs or nftables", f.proxyMode)
}

// getOptions are `knet get`'s switches.
type getOptions struct {
	clusterFlags
	output        string
	namespace     string
	allNamespaces bool
	now           string
}

func newGetCmd(s Streams) *cobra.Command {
	o := &getOptions{}
	cmd := &cobra.Command{
		Use:   "get nodes|pods|services|endpointslices (--preset NAME | -f CLUSTER.yaml) [-o wide|json|yaml]",
		Short: "list a cluster's objects as kubectl does",
		Long: `get lists a cluster's nodes, pods, Services or EndpointSlices with kubectl's columns
(kubectl v1.35 table printers): -o wide adds kubectl's wide columns (and, for nodes, knet's
SUBNET, ZONE and POD-CIDR after them), -o json|yaml prints a kind: List. Namespaced kinds list
the default namespace unless -n or -A is given. AGE is measured from --now (RFC 3339,
default: the current time).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.load()
			if err != nil {
				return err
			}
			now := time.Now()
			if o.now != "" {
				if now, err = time.Parse(time.RFC3339, o.now); err != nil {
					return fmt.Errorf("--now: %w", err)
				}
			}
			return runGet(s.Out, s.Err, c, args[0], o, now)
		},
	}
	o.add(cmd)
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "output format: wide, json or yaml")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace to list")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list every namespace (adds a NAMESPACE column)")
	cmd.Flags().StringVar(&o.now, "now", "", "reference time for AGE (RFC 3339)")
	return cmd
}

// resource kinds and the names kubectl accepts for them.
var getKinds = map[string]string{
	"nodes": "nodes", "node": "nodes", "no": "nodes",
	"pods": "pods", "pod": "pods", "po": "pods",
	"services": "services", "service": "services", "svc": "services",
	"endpointslices": "endpointslices", "endpointslice": "endpointslices",
	"endpointslices.discovery.k8s.io": "endpointslices",
}

func runGet(w, errW io.Writer, c *cluster.Cluster, kind string, o *getOptions, now time.Time) error {
	k, ok := getKinds[kind]
	if !ok {
		return fmt.Errorf("knet get: unknown resource type %q (have nodes, pods, services, endpointslices)", kind)
	}
	switch o.output {
	case "", "wide", "json", "yaml":
	default:
		return fmt.Errorf("knet get: unknown output format %q (have wide, json, yaml)", o.output)
	}
	inNS := func(ns string) bool { return o.allNamespaces || ns == o.namespace }
	var items []runtime.Object
	var rows [][]string
	var header []string
	wide := o.output == "wide"
	age := func(t metav1.Time) string {
		if t.IsZero() {
			return "<unknown>"
		}
		return duration.HumanDuration(now.Sub(t.Time))
	}
	switch k {
	case "nodes":
		header = []string{"NAME", "STATUS", "ROLES", "AGE", "VERSION"}
		if wide {
			header = append(header, "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME", "SUBNET", "ZONE", "POD-CIDR")
		}
		nodes := append([]*corev1.Node(nil), c.Objects.Nodes...)
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
		for _, n := range nodes {
			items = append(items, n)
			row := printNode(n, wide, age)
			if wide {
				subnet, zone := "<none>", "<none>"
				if cn := c.NodeByName(n.Name); cn != nil {
					subnet = cn.Subnet.String()
					if cn.Zone != "" {
						zone = cn.Zone
					}
				}
				cidr := n.Spec.PodCIDR
				if cidr == "" {
					cidr = "<none>"
				}
				row = append(row, subnet, zone, cidr)
			}
			rows = append(rows, row)
		}
	case "pods":
		header = []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
		if wide {
			header = append(header, "IP", "NODE", "NOMINATED NODE", "READINESS GATES")
		}
		for _, p := range c.Objects.Pods {
			if inNS(p.Namespace) {
				items = append(items, p)
				rows = append(rows, printPod(p, wide, age))
			}
		}
	case "services":
		header = []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}
		if wide {
			header = append(header, "SELECTOR")
		}
		for _, s := range c.Objects.Services {
			if inNS(s.Namespace) {
				items = append(items, s)
				rows = append(rows, printService(s, wide, age))
			}
		}
	case "endpointslices":
		header = []string{"NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"}
		for _, es := range c.Objects.EndpointSlices {
			if inNS(es.Namespace) {
				items = append(items, es)
				rows = append(rows, []string{es.Name, string(es.AddressType), formatDiscoveryPorts(es.Ports), formatDiscoveryEndpoints(es.Endpoints), age(es.CreationTimestamp)})
			}
		}
	}
	switch o.output {
	case "json", "yaml":
		return printList(w, items, o.output)
	}
	if len(rows) == 0 {
		// As kubectl: a note on stderr, nothing on stdout, success.
		if k == "nodes" || o.allNamespaces {
			fmt.Fprintln(errW, "No resources found")
		} else {
			fmt.Fprintf(errW, "No resources found in %s namespace.\n", o.namespace)
		}
		return nil
	}
	namespaced := k != "nodes"
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0) // kubectl cli-runtime printers.GetNewTabWriter
	if namespaced && o.allNamespaces {
		header = append([]string{"NAMESPACE"}, header...)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i, r := range rows {
		if namespaced && o.allNamespaces {
			r = append([]string{items[i].(metav1.Object).GetNamespace()}, r...)
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printList writes items as kubectl's `-o json|yaml` List: kubectl holds the objects as
// unstructured maps, so keys come out sorted; JSON is indented by four spaces.
func printList(w io.Writer, items []runtime.Object, format string) error {
	maps := []any{}
	for _, it := range items {
		it = withTypeMeta(it)
		b, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("encoding list: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("encoding list: %w", err)
		}
		maps = append(maps, m)
	}
	list := map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"items":      maps,
		"metadata":   map[string]string{"resourceVersion": ""},
	}
	js, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("encoding list: %w", err)
	}
	if format == "yaml" {
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return fmt.Errorf("encoding list: %w", err)
		}
		_, err = w.Write(y)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, js, "", "    "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// withTypeMeta returns a copy of obj with apiVersion and kind set, as the API server sends them.
func withTypeMeta(obj runtime.Object) runtime.Object {
	switch o := obj.(type) {
	case *corev1.Node:
		c := *o
		c.APIVersion, c.Kind = "v1", "Node"
		return &c
	case *corev1.Pod:
		c := *o
		c.APIVersion, c.Kind = "v1", "Pod"
		return &c
	case *corev1.Service:
		c := *o
		c.APIVersion, c.Kind = "v1", "Service"
		return &c
	case *discoveryv1.EndpointSlice:
		c := *o
		c.APIVersion, c.Kind = "discovery.k8s.io/v1", "EndpointSlice"
		return &c
	}
	return obj
}

// The row printers below follow k8s.io/kubernetes pkg/printers/internalversion/printers.go
// (v1.35) for the cases a rendered cluster has.

func printNode(n *corev1.Node, wide bool, age func(metav1.Time) string) []string {
	status := []string{}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				status = append(status, "Ready")
			} else {
				status = append(status, "NotReady")
			}
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	roleSet := map[string]bool{}
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roleSet[r] = true
			}
		case k == "kubernetes.io/role" && v != "":
			roleSet[v] = true
		}
	}
	var roles []string
	for r := range roleSet {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	rolesStr := strings.Join(roles, ",")
	if rolesStr == "" {
		rolesStr = "<none>"
	}
	row := []string{n.Name, strings.Join(status, ","), rolesStr, age(n.CreationTimestamp), n.Status.NodeInfo.KubeletVersion}
	if wide {
		info := n.Status.NodeInfo
		osImage, kernel, cr := orUnknown(info.OSImage), orUnknown(info.KernelVersion), orUnknown(info.ContainerRuntimeVersion)
		if info.Architecture != "" {
			kernel += " (" + info.Architecture + ")"
		}
		row = append(row, nodeAddress(n, corev1.NodeInternalIP), nodeAddress(n, corev1.NodeExternalIP), osImage, kernel, cr)
	}
	return row
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func printPod(p *corev1.Pod, wide bool, age func(metav1.Time) string) []string {
	restarts, ready := 0, 0
	total := len(p.Spec.Containers)
	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	var lastRestart metav1.Time
	hasRunning := false
	for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
		cs := p.Status.ContainerStatuses[i]
		restarts += int(cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && lastRestart.Before(&t.FinishedAt) {
			lastRestart = t.FinishedAt
		}
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			reason = cs.State.Waiting.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
			reason = cs.State.Terminated.Reason
		case cs.State.Terminated != nil && cs.State.Terminated.Signal != 0:
			reason = fmt.Sprintf("Signal:%d", cs.State.Terminated.Signal)
		case cs.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
		case cs.Ready && cs.State.Running != nil:
			hasRunning = true
			ready++
		}
	}
	if reason == "Completed" && hasRunning {
		reason = "Running"
	}
	if p.DeletionTimestamp != nil {
		reason = "Terminating"
	}
	rs := strconv.Itoa(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		rs = fmt.Sprintf("%d (%s ago)", restarts, age(lastRestart))
	}
	row := []string{p.Name, fmt.Sprintf("%d/%d", ready, total), reason, rs, age(p.CreationTimestamp)}
	if wide {
		ip := "<none>"
		if len(p.Status.PodIPs) > 0 {
			ip = p.Status.PodIPs[0].IP
		}
		node := p.Spec.NodeName
		if node == "" {
			node = "<none>"
		}
		nominated := p.Status.NominatedNodeName
		if nominated == "" {
			nominated = "<none>"
		}
		gates := "<none>"
		if len(p.Spec.ReadinessGates) > 0 {
			trueConds := 0
			for _, g := range p.Spec.ReadinessGates {
				for _, cond := range p.Status.Conditions {
					if cond.Type == g.ConditionType {
						if cond.Status == corev1.ConditionTrue {
							trueConds++
						}
						break
					}
				}
			}
			gates = fmt.Sprintf("%d/%d", trueConds, len(p.Spec.ReadinessGates))
		}
		row = append(row, ip, node, nominated, gates)
	}
	return row
}

func printService(s *corev1.Service, wide bool, age func(metav1.Time) string) []string {
	clusterIP := "<none>"
	if len(s.Spec.ClusterIPs) > 0 {
		clusterIP = s.Spec.ClusterIPs[0]
	}
	ports := make([]string, len(s.Spec.Ports))
	for i, p := range s.Spec.Ports {
		ports[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.NodePort > 0 {
			ports[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
	}
	portStr := strings.Join(ports, ",")
	if portStr == "" {
		portStr = "<none>"
	}
	row := []string{s.Name, string(s.Spec.Type), clusterIP, serviceExternalIP(s, wide), portStr, age(s.CreationTimestamp)}
	if wide {
		row = append(row, labels.FormatLabels(s.Spec.Selector))
	}
	return row
}

// loadBalancerWidth is kubectl's clip for LoadBalancer ingress outside -o wide.
const loadBalancerWidth = 16

func serviceExternalIP(s *corev1.Service, wide bool) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(s.Spec.ExternalIPs) > 0 {
			return strings.Join(s.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		set := map[string]bool{}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if in.IP != "" {
				set[in.IP] = true
			} else if in.Hostname != "" {
				set[in.Hostname] = true
			}
		}
		var lb []string
		for k := range set {
			lb = append(lb, k)
		}
		sort.Strings(lb)
		r := strings.Join(lb, ",")
		if !wide && len(r) > loadBalancerWidth {
			r = r[:loadBalancerWidth-3] + "..."
		}
		if len(s.Spec.ExternalIPs) > 0 {
			var res []string
			if r != "" {
				res = append(res, strings.Split(r, ",")...)
			}
			return strings.Join(append(res, s.Spec.ExternalIPs...), ",")
		}
		if r != "" {
			return r
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	}
	return "<unknown>"
}

func formatDiscoveryPorts(ports []discoveryv1.EndpointPort) string {
	var list []string
	const limit = 3
	more, count := false, 0
	for _, p := range ports {
		if len(list) < limit {
			n := "*"
			if p.Port != nil {
				n = strconv.Itoa(int(*p.Port))
			} else if p.Name != nil {
				n = *p.Name
			}
			list = append(list, n)
		} else if len(list) == limit {
			more = true
		}
		count++
	}
	return listWithMore(list, more, count, limit)
}

func formatDiscoveryEndpoints(eps []discoveryv1.Endpoint) string {
	var list []string
	const limit = 3
	more, count := false, 0
	for _, e := range eps {
		for _, a := range e.Addresses {
			if len(list) < limit {
				list = append(list, a)
			} else if len(list) == limit {
				more = true
			}
			count++
		}
	}
	return listWithMore(list, more, count, limit)
}

func listWithMore(list []string, more bool, count, limit int) string {
	r := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", r, count-limit)
	}
	if r == "" {
		r = "<unset>"
	}
	return r
}
