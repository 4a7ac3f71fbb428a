package cli

import (
	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/compare"
)

type diffFlags struct {
	clusterFlags
	from, to string
	output   string
}

func newDiffCmd(s Streams) *cobra.Command {
	f := &diffFlags{}
	cmd := &cobra.Command{
		Use:   "diff --from MODE --to MODE (--preset NAME | -f CLUSTER.yaml) [-o text|json]",
		Short: "what changes when switching kube-proxy mode",
		Long: `diff renders the cluster with kube-proxy in the --from mode and in the --to mode and
runs the same flows through a worker in both: pod → ClusterIP on a defined and on an undefined
port, ping to a ClusterIP, node → NodePort on 127.0.0.1 and on the node IP, pod → LoadBalancer
IP, pod → Service with ClientIP affinity, external → NodePort with externalTrafficPolicy=Local
(probe Services are added for the last three). It reports every flow whose verdict, DNAT set
or masquerading changes, with the documented reason, then what the old mode leaves on the node
(kube-ipvs0, IPVS virtual servers, ipsets, KUBE-* chains, the nft table) and the commands that
remove it. IPVS mode is deprecated since Kubernetes 1.35: --from ipvs --to nftables is the
migration most clusters face.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := compare.ParseFormat(f.output)
			if err != nil {
				return err
			}
			c, err := f.load()
			if err != nil {
				return err
			}
			m, err := compare.Diff(c, cluster.ProxyMode(f.from), cluster.ProxyMode(f.to))
			if err != nil {
				return err
			}
			return m.Write(s.Out, format)
		},
	}
	f.clusterFlags.add(cmd)
	cmd.Flags().StringVar(&f.from, "from", "", "current kube-proxy mode: iptables, ipvs or nftables")
	cmd.Flags().StringVar(&f.to, "to", "", "new kube-proxy mode: iptables, ipvs or nftables")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text or json")
	return cmd
}
