package modload

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Conditions a module loads under by itself (every module also loads as a
// dependency of one that loads).
const (
	Always = "always" // at the start of the modules stage (filesystems)
	EFI    = "efi"    // when the firmware is UEFI (efivarfs)
)

// Module is what the rules say of one module file of load.order.
type Module struct {
	File    string   // its name in load.order (erofs.ko)
	When    string   // Always, EFI, or "": only by alias or as a dependency
	Aliases []string // modalias patterns (fnmatch) of the devices it drives
	Depends []string // module files to load before it
}

// The rules file (layout.LoadRules) has one fact a line, verb first:
//
//	always MODULE
//	efi MODULE
//	alias MODULE PATTERN
//	depends MODULE DEP...
//
// MODULE and DEP are file names of load.order; '#' starts a comment line.
// Module files and patterns are printable ASCII without white space, as
// kernel modaliases are.

// ParseRules reads a rules file; modules come out in the order of their
// first line.
func ParseRules(data []byte) ([]Module, error) {
	var mods []Module
	index := map[string]int{}
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := checkRule(f); err != nil {
			return nil, fmt.Errorf("module rules line %d: %w", n+1, err)
		}
		i, ok := index[f[1]]
		if !ok {
			i = len(mods)
			index[f[1]] = i
			mods = append(mods, Module{File: f[1]})
		}
		m := &mods[i]
		switch f[0] {
		case Always, EFI:
			if m.When != "" {
				return nil, fmt.Errorf("module rules line %d: module %s already loads under %q", n+1, m.File, m.When)
			}
			m.When = f[0]
		case "alias":
			m.Aliases = append(m.Aliases, f[2])
		case "depends":
			m.Depends = append(m.Depends, f[2:]...)
		}
	}
	return mods, nil
}

// checkRule checks the fields of one line.
func checkRule(f []string) error {
	switch {
	case f[0] != Always && f[0] != EFI && f[0] != "alias" && f[0] != "depends":
		return fmt.Errorf("unknown rule %q (want always, efi, alias or depends)", f[0])
	case len(f) < 2, (f[0] == Always || f[0] == EFI) && len(f) != 2:
		return fmt.Errorf("%s takes a module file", f[0])
	case f[0] == "alias" && len(f) != 3:
		return errors.New("alias takes a module file and a pattern")
	case f[0] == "depends" && len(f) < 3:
		return errors.New("depends takes a module file and its dependencies")
	}
	names := f[1:]
	if f[0] == "alias" {
		if err := CheckPattern(f[2]); err != nil {
			return fmt.Errorf("alias of %s: %w", f[1], err)
		}
		names = f[1:2]
	}
	for _, name := range names {
		if err := checkFile(name); err != nil {
			return err
		}
	}
	return nil
}

// MarshalRules writes the rules of mods in the format ParseRules reads.
func MarshalRules(mods []Module) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# cfsboot-init: when each module of load.order loads by itself\n")
	for _, m := range mods {
		if err := checkFile(m.File); err != nil {
			return nil, err
		}
		switch m.When {
		case "":
		case Always, EFI:
			fmt.Fprintf(&b, "%s %s\n", m.When, m.File)
		default:
			return nil, fmt.Errorf("module %s: unknown condition %q", m.File, m.When)
		}
		if len(m.Depends) > 0 {
			for _, d := range m.Depends {
				if err := checkFile(d); err != nil {
					return nil, fmt.Errorf("module %s: dependency: %w", m.File, err)
				}
			}
			fmt.Fprintf(&b, "depends %s %s\n", m.File, strings.Join(m.Depends, " "))
		}
		for _, a := range m.Aliases {
			if err := CheckPattern(a); err != nil {
				return nil, fmt.Errorf("module %s: alias %q: %w", m.File, a, err)
			}
			fmt.Fprintf(&b, "alias %s %s\n", m.File, a)
		}
	}
	return b.Bytes(), nil
}

// checkFile accepts the plain file names load.order lists.
func checkFile(name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") || !printable(name) {
		return fmt.Errorf("module file %q: not a plain file name", name)
	}
	return nil
}

// printable: ASCII without white space or controls, as modaliases are;
// such a word reads back as one field.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// CheckPattern accepts the patterns the rules file can hold and Match
// reads as fnmatch does: printable ASCII, every '[' closed, no '\' at
// the end.
func CheckPattern(p string) error {
	if p == "" || !printable(p) {
		return fmt.Errorf("pattern %q: empty, or not printable ASCII", p)
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i++; i == len(p) {
				return fmt.Errorf("pattern %q: ends in '\\'", p)
			}
		case '[':
			end, ok := classEnd(p, i)
			if !ok {
				return fmt.Errorf("pattern %q: '[' at %d not closed", p, i)
			}
			i = end
		}
	}
	return nil
}
