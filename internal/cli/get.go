package cli

import "github.com/spf13/cobra"

func newGetCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "list a cluster's objects as kubectl does",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet get", 3)
		},
	}
}
