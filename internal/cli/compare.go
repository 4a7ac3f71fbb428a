package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/knet-dev/knet/compare"
)

type compareFlags struct {
	profile string
	output  string
	html    string
}

func newCompareCmd(s Streams) *cobra.Command {
	f := &compareFlags{}
	cmd := &cobra.Command{
		Use:   "compare [--profile FILE|NAME] [-o text|json|markdown] [--html FILE]",
		Short: "compare kube-proxy modes and pod networks for a cluster profile",
		Long: `compare renders a representative node for every combination of kube-proxy mode
(iptables, IPVS, nftables; v1.35 by default) and pod network (Calico IPIP Always / CrossSubnet /
VXLAN / Never, kube-router, Flannel VXLAN / host-gw) for a cluster profile, measures rules and
objects per node, the rules a first packet examines (best, median and worst Service, through
the netfilter and nftables evaluators), the bytes kube-proxy rewrites per full sync and per
endpoint change, the share of pod traffic encapsulated, the overhead and the pod MTU, and
ranks the combinations for the profile's traffic mix.

Profiles: the built-ins small, seed and large, or a YAML file (see compare/testdata/profile.yaml).
Profiles too big to render are measured at two or three smaller sizes and extrapolated along
straight lines; the report says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := compare.ParseFormat(f.output)
			if err != nil {
				return err
			}
			p, err := compare.LoadProfile(f.profile)
			if err != nil {
				return err
			}
			rep, err := compare.Compare(p)
			if err != nil {
				return err
			}
			if f.html != "" {
				out, err := os.Create(f.html)
				if err != nil {
					return fmt.Errorf("compare: %w", err)
				}
				if err := rep.WriteHTML(out); err != nil {
					out.Close()
					return fmt.Errorf("compare: write %s: %w", f.html, err)
				}
				if err := out.Close(); err != nil {
					return fmt.Errorf("compare: %w", err)
				}
			}
			return rep.Write(s.Out, format)
		},
	}
	cmd.Flags().StringVar(&f.profile, "profile", "seed", "profile file, or a built-in: small, seed, large")
	cmd.Flags().StringVarP(&f.output, "output", "o", "text", "text, json or markdown")
	cmd.Flags().StringVar(&f.html, "html", "", "also write a self-contained HTML report with SVG charts to FILE")
	return cmd
}
