package cli

import "github.com/spf13/cobra"

func newVerifyCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "verify a node snapshot against its intent",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet verify", 6)
		},
	}
}
