package cli

import "github.com/spf13/cobra"

func newExecCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "exec",
		Short: "run an emulated command on an emulated node",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet exec", 3)
		},
	}
}
