package cli

import "github.com/spf13/cobra"

func newCollectCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "collect",
		Short: "collect a read-only snapshot of this node",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet collect", 6)
		},
	}
}
