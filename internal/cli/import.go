package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/cluster/live"
)

// importOptions are `knet import`'s switches.
type importOptions struct {
	kubeconfig  string
	objects     []string
	output      string
	name        string
	pageSize    int64
	podCIDR     string
	serviceCIDR string
	proxyMode   string
	cni         string
	cniMode     string
	subnetBits  int
}

func newImportCmd(s Streams) *cobra.Command {
	o := &importOptions{}
	cmd := &cobra.Command{
		Use:   "import [--kubeconfig FILE | --objects FILE...] -o CLUSTER.yaml",
		Short: "import a real cluster (live with client-go, or from kubectl dumps) into a cluster file",
		Long: `import reads a cluster's Nodes, Pods, Services and EndpointSlices, either live from its API
server (paged lists; plus the kube-system/kube-proxy ConfigMap, the ServiceCIDR and the CNI's
settings: Calico IPPools, Flannel's net-conf.json, kube-router's flags) or from
` + "`kubectl get svc,endpointslices,pods,nodes -A -o yaml`" + ` dumps, infers what is not given
(pod and Service CIDRs, kube-proxy mode and version, the CNI) and writes a cluster file that
-f reads. What could not be read or was dropped is printed as notes on stderr.

The kubeconfig is --kubeconfig, else $KUBECONFIG, else the in-cluster service account, else
~/.kube/config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output == "" {
				return errors.New("import: -o CLUSTER.yaml is required")
			}
			lo, err := o.liveOptions()
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			var c *cluster.Cluster
			var notes []cluster.Note
			if len(o.objects) > 0 {
				if o.kubeconfig != "" {
					return errors.New("import: give --kubeconfig or --objects, not both")
				}
				objs, n, err := cluster.LoadObjects(o.objects...)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				c, notes, err = live.FromObjects(objs, lo)
				if err != nil {
					return err
				}
				notes = append(n, notes...)
			} else {
				cfg, err := live.RESTConfig(o.kubeconfig)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				c, notes, err = live.Import(cmd.Context(), cfg, lo)
				if err != nil {
					return err
				}
			}
			var b bytes.Buffer
			if err := live.WriteCluster(&b, c); err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if err := os.WriteFile(o.output, b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("import: %w", err)
			}
			for _, n := range notes {
				fmt.Fprintf(s.Err, "note: %s\n", n)
			}
			fmt.Fprintf(s.Out, "wrote %s: %d nodes, %d pods, %d services, %d endpointslices; pod CIDR %s, service CIDR %s, %s %s, kube-proxy %s %s\n",
				o.output, len(c.Nodes), len(c.Objects.Pods), len(c.Objects.Services), len(c.Objects.EndpointSlices),
				c.PodCIDR, c.ServiceCIDR, c.CNI.Plugin, c.CNI.Mode, c.Proxy.Mode, c.Proxy.Version)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, in-cluster, ~/.kube/config)")
	f.StringSliceVar(&o.objects, "objects", nil, "kubectl -o yaml|json dumps to import instead of a live cluster (repeatable)")
	f.StringVarP(&o.output, "output", "o", "", "cluster file to write")
	f.StringVar(&o.name, "name", "imported", "cluster name")
	f.Int64Var(&o.pageSize, "page-size", live.DefaultPageSize, "list page size (live import)")
	f.StringVar(&o.podCIDR, "pod-cidr", "", "cluster pod CIDR (default: the CNI's pool, else covering the nodes' spec.podCIDR)")
	f.StringVar(&o.serviceCIDR, "service-cidr", "", "Service CIDR (default: the ServiceCIDR object, else around the kubernetes Service)")
	f.StringVar(&o.proxyMode, "proxy-mode", "", "kube-proxy mode iptables|ipvs|nftables (default: the kube-proxy ConfigMap)")
	f.StringVar(&o.cni, "cni", "", "pod network calico|kube-router|flannel (default: read from the cluster)")
	f.StringVar(&o.cniMode, "cni-mode", "", "pod network mode (e.g. IPIPCrossSubnet, vxlan; default: read from the cluster)")
	f.IntVar(&o.subnetBits, "node-subnet-bits", live.DefaultNodeSubnetBits, "prefix length assumed for node subnets (not in the API)")
	return cmd
}

func (o *importOptions) liveOptions() (live.Options, error) {
	lo := live.Options{Name: o.name, PageSize: o.pageSize, ProxyMode: cluster.ProxyMode(o.proxyMode),
		CNI: cluster.CNI{Plugin: cluster.CNIPlugin(o.cni), Mode: o.cniMode}, NodeSubnetBits: o.subnetBits}
	switch lo.ProxyMode {
	case "", cluster.ProxyIPTables, cluster.ProxyIPVS, cluster.ProxyNFTables:
	default:
		return lo, fmt.Errorf("--proxy-mode %q: want iptables, ipvs or nftables", o.proxyMode)
	}
	switch lo.CNI.Plugin {
	case "", cluster.CNICalico, cluster.CNIKubeRouter, cluster.CNIFlannel:
	default:
		return lo, fmt.Errorf("--cni %q: want calico, kube-router or flannel", o.cni)
	}
	for _, p := range []struct {
		flag, v string
		dst     *netip.Prefix
	}{{"--pod-cidr", o.podCIDR, &lo.PodCIDR}, {"--service-cidr", o.serviceCIDR, &lo.ServiceCIDR}} {
		if p.v == "" {
			continue
		}
		pr, err := netip.ParsePrefix(p.v)
		if err != nil {
			return lo, fmt.Errorf("%s: %w", p.flag, err)
		}
		*p.dst = pr
	}
	if o.subnetBits < 1 || o.subnetBits > 32 {
		return lo, fmt.Errorf("--node-subnet-bits %d: want 1..32", o.subnetBits)
	}
	return lo, nil
}
