package cli

import "github.com/spf13/cobra"

func newTraceCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "trace",
		Short: "trace one packet through a node or a cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet trace", 2)
		},
	}
}
