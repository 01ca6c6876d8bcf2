package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageError marks an error in how a command was called (exit 2), as opposed
// to a failure while doing the work (exit 1).
type usageError struct{ error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// quiet is the root's --quiet flag: no progress bars.
var quiet bool

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cfsboot",
		Short: "Make, store and boot verified composefs images",
		Long: `cfsboot makes composefs images (byte-compatible with mkcomposefs), fills and
checks the object store they point into, builds the initrd that verifies and
boots them (cfsboot-init), and predicts and checks the TPM PCR values of such
a boot.`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "no progress output (it is shown only when stderr is a terminal)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newImageCmd(), newStoreCmd(), newInitramfsCmd(), newOCICmd(), newUKICmd(), newKeysCmd(), newPCRCmd(), newInstallCmd(), newDeployCmd(), newRollbackCmd(), newStatusCmd(), newVersionCmd(), newDocsCmd())
	makeGroupsStrict(root)
	return root
}

// makeGroupsStrict gives every command that only groups subcommands a run
// function that rejects a missing or unknown subcommand as a usage error;
// cobra would print the help and exit 0.
func makeGroupsStrict(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			if len(args) == 0 {
				return usageErrorf("missing subcommand (%s)", strings.Join(names, ", "))
			}
			return usageErrorf("unknown command %q (%s)", args[0], strings.Join(names, ", "))
		}
	}
	for _, sub := range c.Commands() {
		makeGroupsStrict(sub)
	}
}

// trackStart wraps every command's run function to record that argument
// and flag checking passed: an error before that is a usage error.
func trackStart(c *cobra.Command) *bool {
	started := new(bool)
	var wrap func(*cobra.Command)
	wrap = func(c *cobra.Command) {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				*started = true
				return run(cmd, args)
			}
		}
		for _, sub := range c.Commands() {
			wrap(sub)
		}
	}
	wrap(c)
	return started
}

// exactArgs is cobra.ExactArgs with the argument's name in the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("want %d argument(s) (%s), got %d", len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs with the argument's name in the message.
func minArgs(n int, name string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usageErrorf("want at least %d %s", n, name)
		}
		return nil
	}
}

// printJSON writes v as indented JSON to the command's output.
func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonFlag adds the --json flag every reporting command has.
func jsonFlag(fs *pflag.FlagSet) *bool {
	return fs.Bool("json", false, "print the result as JSON (schema in the command's help)")
}

// progressLog writes a command's progress lines to stderr; nil (no
// progress) under --quiet.
func progressLog(cmd *cobra.Command) func(format string, args ...any) {
	if quiet {
		return nil
	}
	return func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
}
