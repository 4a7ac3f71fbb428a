package cli

import "github.com/spf13/cobra"

func newExplainCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "explain",
		Short: "annotate dumps in Kubernetes terms",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet explain", 2)
		},
	}
}
