package cli

import "github.com/spf13/cobra"

func newSimulateCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "simulate",
		Short: "simulate load balancing over many connections",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet simulate", 4)
		},
	}
}
