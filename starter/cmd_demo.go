package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/recoup-dunning/recoup/internal/customers"
)

// Demo: the demo data set (the events themselves go in with `starter event`).
func addDemoCommands(root *cobra.Command, a *app) {
	root.AddCommand(&cobra.Command{
		Use:     "seed",
		GroupID: "demo",
		Short:   "Load the demo data set",
		Long:    "Load the demo customers (cus_demo_01 …) with a year of payment history into DATABASE_URL.",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.d.store(cmd.Context())
			if err != nil {
				return err
			}
			n, err := customers.Seed(cmd.Context(), st, time.Now().UTC().Truncate(24*time.Hour))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "seeded %d demo customers (cus_demo_01 … cus_demo_%02d) with a year of payment history\n", n, n)
			return nil
		},
	})
}
