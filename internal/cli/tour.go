package cli

import "github.com/spf13/cobra"

func newTourCmd(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "tour",
		Short: "walk the seed's clusters A, B and C",
		RunE: func(cmd *cobra.Command, args []string) error {
			return notYet("knet tour", 2)
		},
	}
}
