package cli

import "github.com/spf13/cobra"

func newDiffCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "diff",
		Short: "what changes when switching kube-proxy mode",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet diff", 7)
		},
	}
}
