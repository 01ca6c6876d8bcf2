// Command cfsboot makes composefs images, fills and checks the object store,
// builds the initrd and predicts PCR values. Each command group lives in its
// own file as a thin layer over a library package.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes, as users of other system CLIs expect them.
const (
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line was wrong; nothing was done
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	started := trackStart(root)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var usage usageError
	if !*started || errors.As(err, &usage) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	return exitFailure
}
