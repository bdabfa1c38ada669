package main

import (
	"fmt"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the flotilla version",
		Example: "  flotilla version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "flotilla", buildinfo.String())
			return err
		},
	}
}
