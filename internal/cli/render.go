package cli

import "github.com/spf13/cobra"

func newRenderCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "render",
		Short: "render what kube-proxy or the CNI programs on a node",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet render", 2)
		},
	}
}
