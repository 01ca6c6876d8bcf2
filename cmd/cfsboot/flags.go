package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseInterspersed parses flags that may come before or after positional
// arguments ("image create DIR --store S"), as users of other CLIs expect.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// subcommands dispatches "GROUP SUB ARGS..." to a table of handlers.
func subcommands(group string, table map[string]func([]string) error, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("missing subcommand (%s)", strings.Join(sortedKeys(table), ", "))
	}
	run, ok := table[args[0]]
	if !ok {
		return fmt.Errorf("unknown subcommand %q (%s)", args[0], strings.Join(sortedKeys(table), ", "))
	}
	return run(args[1:])
}
