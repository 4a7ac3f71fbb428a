package cli

import "github.com/spf13/cobra"

func newLabCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "lab",
		Short: "run a cluster on a real Linux kernel in network namespaces",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet lab", 5)
		},
	}
}
