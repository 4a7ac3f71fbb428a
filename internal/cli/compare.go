package cli

import "github.com/spf13/cobra"

func newCompareCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "compare",
		Short: "compare kube-proxy modes and pod networks",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet compare", 7)
		},
	}
}
