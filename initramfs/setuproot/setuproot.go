// Package setuproot reads composefs-setup-root's configuration file,
// /usr/lib/composefs/setup-root-conf.toml in the initrd, with the schema
// composefs-rs (crates/composefs-setup-root) and bootc (crates/initramfs)
// read:
//
//	[etc]
//	mount = "none" | "bind" | "overlay" | "transient"   # default overlay
//	transient = true | false   # shorthand for mount = "transient"
//	[var]
//	mount = ...                # default bind
//	transient = ...
//	[root]
//	transient = true | false   # a tmpfs overlay over the whole root
//
// bootc's aliases "root" (= none) and "volatile" (= transient) are
// accepted. The parser knows exactly this subset of TOML (tables, string
// and boolean values, comments) so that PID 1 links no TOML library; any
// other TOML is an error naming the line, never a guess. Unknown keys in
// the known tables are ignored, as serde ignores them there.
package setuproot

import (
	"fmt"
	"strings"
)

// MountType is how /etc or /var of the new root is set up from the
// deployment's state directory (state/deploy/<image>/<dir>).
type MountType string

const (
	Unset     MountType = ""
	None      MountType = "none"      // the image's directory as it is
	Bind      MountType = "bind"      // the state directory bound over it
	Overlay   MountType = "overlay"   // an overlay with upper/ and work/ in the state directory
	Transient MountType = "transient" // an overlay whose upper layer is in memory
)

// Mount is the [etc] or [var] table.
type Mount struct {
	Mount     MountType // Unset when the file does not say
	Transient bool
}

// Resolve is the mount type in effect: mount= if given, else transient if
// set, else def.
func (m Mount) Resolve(def MountType) MountType {
	switch {
	case m.Mount != Unset:
		return m.Mount
	case m.Transient:
		return Transient
	}
	return def
}

// Config is the whole file. Its zero value is what a missing file means.
type Config struct {
	Etc, Var      Mount
	RootTransient bool // [root] transient
}

// Defaults of composefs-setup-root.
const (
	DefaultEtc = Overlay
	DefaultVar = Bind
)

// EtcMount and VarMount are the mount types in effect.
func (c Config) EtcMount() MountType { return c.Etc.Resolve(DefaultEtc) }
func (c Config) VarMount() MountType { return c.Var.Resolve(DefaultVar) }

// Parse reads the file's contents.
func Parse(data []byte) (Config, error) {
	var c Config
	table := ""
	seenTables := map[string]bool{}
	seenKeys := map[string]bool{}
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(stripComment(strings.TrimSuffix(raw, "\r")))
		if line == "" {
			continue
		}
		fail := func(format string, args ...any) (Config, error) {
			return Config{}, fmt.Errorf("line %d: %s: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(line, "[") {
			name, ok := strings.CutSuffix(line[1:], "]")
			name = strings.TrimSpace(name)
			if !ok || strings.HasPrefix(name, "[") {
				return fail("want a table header [etc], [var] or [root]")
			}
			switch name {
			case "etc", "var", "root":
			default:
				return fail("unknown table (want etc, var or root)")
			}
			if seenTables[name] {
				return fail("table [%s] defined twice", name)
			}
			seenTables[name], table = true, name
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || !bareKey(key) {
			return fail("want key = value")
		}
		if table == "" {
			return fail("key outside a table (want it under [etc], [var] or [root])")
		}
		if seenKeys[table+"."+key] {
			return fail("key %s set twice in [%s]", key, table)
		}
		seenKeys[table+"."+key] = true
		m := map[string]*Mount{"etc": &c.Etc, "var": &c.Var}[table]
		var err error
		switch {
		case key == "transient" && table == "root":
			c.RootTransient, err = parseBool(value)
		case key == "transient":
			m.Transient, err = parseBool(value)
		case key == "mount" && m != nil:
			m.Mount, err = parseMountType(value)
		default:
			// serde ignores fields a struct does not have.
			err = checkValue(value)
		}
		if err != nil {
			return fail("%v", err)
		}
	}
	return c, nil
}

// stripComment drops a # comment that is not inside a string.
func stripComment(s string) string {
	inString := byte(0)
	for i := 0; i < len(s); i++ {
		switch {
		case inString != 0 && s[i] == '\\' && inString == '"':
			i++
		case inString != 0 && s[i] == inString:
			inString = 0
		case inString == 0 && (s[i] == '"' || s[i] == '\''):
			inString = s[i]
		case inString == 0 && s[i] == '#':
			return s[:i]
		}
	}
	return s
}

func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want true or false")
}

func parseMountType(v string) (MountType, error) {
	s, err := parseString(v)
	if err != nil {
		return Unset, err
	}
	switch s {
	case "none", "root":
		return None, nil
	case "bind":
		return Bind, nil
	case "overlay":
		return Overlay, nil
	case "transient", "volatile":
		return Transient, nil
	}
	return Unset, fmt.Errorf("unknown mount type %q (want none, bind, overlay or transient)", s)
}

// parseString reads a basic ("...") or literal ('...') TOML string without
// escapes: no valid value of this schema needs one.
func parseString(v string) (string, error) {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		s := v[1 : len(v)-1]
		if !strings.ContainsAny(s, "\"'\\") {
			return s, nil
		}
	}
	return "", fmt.Errorf("want a quoted string without escapes")
}

// checkValue accepts the scalar values an ignored key may have in this
// subset: a string, a boolean or a decimal integer.
func checkValue(v string) error {
	if _, err := parseString(v); err == nil {
		return nil
	}
	if _, err := parseBool(v); err == nil {
		return nil
	}
	digits := strings.TrimLeft(v, "+-")
	if digits != "" && strings.Trim(digits, "0123456789_") == "" {
		return nil
	}
	return fmt.Errorf("value not understood (this reader knows strings, booleans and integers)")
}
