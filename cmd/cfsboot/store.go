package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"cfsboot/gen/store"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Check and garbage-collect a composefs object store"}
	cmd.AddCommand(newStoreFsckCmd(), newStoreGCCmd())
	return cmd
}

// fsckReport is the JSON schema of `store fsck --json`.
type fsckReport struct {
	Store    string          `json:"store"`
	OK       bool            `json:"ok"`
	Problems []store.Problem `json:"problems"`
}

func newStoreFsckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fsck --store DIR",
		Short: "Check that every image and object is named by its digest and complete",
		Long: `Check that every image is named by its fs-verity digest, that every object an
image references exists with the digest the image expects, and that every
object is named by its digest. Exit status 1 with one line per problem.

JSON schema (--json): {"store", "ok", "problems": [{"Path", "Reason"}]}.`,
		Example: "  cfsboot store fsck --store /var/lib/cfsboot",
		Args:    exactArgs(),
	}
	dir := storeFlag(cmd)
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := store.Open(*dir)
		if err != nil {
			return err
		}
		problems, err := st.Fsck()
		if err != nil {
			return err
		}
		rep := fsckReport{Store: st.Dir(), OK: len(problems) == 0, Problems: problems}
		if *asJSON {
			if err := printJSON(cmd, rep); err != nil {
				return err
			}
		} else {
			for _, p := range problems {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if rep.OK {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", st.Dir())
			}
		}
		if !rep.OK {
			return fmt.Errorf("%d problem(s) in %s", len(problems), st.Dir())
		}
		return nil
	}
	return cmd
}

// gcReport is the JSON schema of `store gc --json`.
type gcReport struct {
	Store   string   `json:"store"`
	DryRun  bool     `json:"dry_run"`
	Removed []string `json:"removed"`
	Bytes   int64    `json:"bytes"`
}

func newStoreGCCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc --store DIR",
		Short: "Remove objects no image references",
		Long: `Remove the objects that no image in the store references.

JSON schema (--json): {"store", "dry_run", "removed": [paths], "bytes"}.`,
		Example: "  cfsboot store gc --store /var/lib/cfsboot --dry-run",
		Args:    exactArgs(),
	}
	dir := storeFlag(cmd)
	dryRun := cmd.Flags().Bool("dry-run", false, "only list what would be removed")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		st, err := store.Open(*dir)
		if err != nil {
			return err
		}
		removed, freed, err := st.GC(*dryRun)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(cmd, gcReport{Store: st.Dir(), DryRun: *dryRun, Removed: removed, Bytes: freed})
		}
		for _, p := range removed {
			fmt.Fprintln(cmd.OutOrStdout(), p)
		}
		verb := "removed"
		if *dryRun {
			verb = "would remove"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %d object(s), %d bytes\n", verb, len(removed), freed)
		return nil
	}
	return cmd
}

// storeFlag adds the required --store flag.
func storeFlag(cmd *cobra.Command) *string {
	dir := cmd.Flags().String("store", "", "the object store `DIR`ectory")
	cmd.MarkFlagRequired("store")
	return dir
}
