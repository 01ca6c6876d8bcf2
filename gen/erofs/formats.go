package erofs

import "fmt"

// Format is an image format version as composefs-rs names them; it is
// what meta.json's erofs_formats and composefs.digest=v1|v2 refer to.
type Format int

const (
	// FormatV0 is mkcomposefs' default: composefs_version 0, raised to 1
	// when the tree holds whiteouts.
	FormatV0 Format = iota
	// FormatV1 is mkcomposefs --min-version=1 (composefs-rs' default): the
	// same layout, composefs_version always 1.
	FormatV1
	// FormatV2 is composefs-rs' legacy layout: extended inodes numbered depth
	// first, no root whiteouts, composefs_version 2.
	FormatV2
)

// Formats lists every format.
var Formats = []Format{FormatV0, FormatV1, FormatV2}

// String returns "v0", "v1" or "v2".
func (f Format) String() string { return fmt.Sprintf("v%d", int(f)) }

// ParseFormat parses "v0", "v1" or "v2".
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("composefs image format %q: want v0, v1 or v2", s)
}

// Set and Type make *Format a command-line flag value (pflag.Value).
func (f *Format) Set(s string) error {
	v, err := ParseFormat(s)
	if err == nil {
		*f = v
	}
	return err
}

func (*Format) Type() string { return "format" }

// Options returns the writer options that produce f.
func (f Format) Options() Options {
	if f == FormatV0 {
		return DefaultOptions()
	}
	return Options{MinVersion: int(f), MaxVersion: int(f)}
}
