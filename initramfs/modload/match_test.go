package modload

import (
	"path"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		// Aliases of the Debian 6.12 cloud kernel against modaliases a
		// QEMU q35 machine shows.
		{"virtio:d00000002v*", "virtio:d00000002v00001AF4", true},
		{"virtio:d00000002v*", "virtio:d00000008v00001AF4", false},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i00", false},
		{"scsi:t-0x00*", "scsi:t-0x00", true},
		{"scsi:t-0x0[07]*", "scsi:t-0x07", true},
		{"scsi:t-0x0[!07]*", "scsi:t-0x07", false},
		{"scsi:t-0x0[^07]*", "scsi:t-0x05", true},
		{"acpi*:MSFT0101:*", "acpi:MSFT0101:", true},
		{"acpi*:MSFT0101:*", "acpi:PNP0C31:", false},
		{"usb:v0BDAp8153d[2-9]*", "usb:v0BDAp8153d3000dc00", true},
		{"usb:v0BDAp8153d[2-9]*", "usb:v0BDAp8153d1000dc00", false},
		{"cpu:type:x86,ven*fam*mod*:feature:*0085*", "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0085,00E5", true},
		// fnmatch without FNM_PATHNAME: '*' and '?' take '/'.
		{"of:N*T*Cfoo/bar*", "of:NnodeT<NULL>Cfoo/bar", true},
		{"a?c", "a/c", true},
		// Sets: ']' first is literal, '-' first or last is literal.
		{"[]x]", "]", true},
		{"[!]x]", "]", false},
		{"[a-]", "-", true},
		{"[-a]", "-", true},
		{"[z-a]", "m", false},
		// Quoting and literal '['.
		{`\*`, "*", true},
		{`\*`, "x", false},
		{`[\]]`, "]", true},
		{"[abc", "[abc", true},
		{"[", "[", true},
		{`a\`, `a\`, true},
		// Backtracking.
		{"*a*b*c", "xxaxxbxxbxc", true},
		{"*a*b*c", "xxaxxbxxbx", false},
		{"", "", true},
		{"*", "", true},
		{"?", "", false},
	} {
		if got := Match(c.pattern, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

// FuzzMatch compares Match with path.Match, an independent
// implementation, where the two define the same thing: ASCII, no '/'
// (path.Match's '*' stops there), no '!' (path.Match negates only with
// '^'), patterns path.Match accepts.
func FuzzMatch(f *testing.F) {
	f.Add("pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01")
	f.Add("scsi:t-0x0[^07]*", "scsi:t-0x05")
	f.Add(`[\]a-c]x\*`, "bx*")
	f.Add("*a*b?c", "aabxc")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := Match(pattern, s) // must not panic on anything
		if !ascii(pattern) || !ascii(s) || strings.ContainsAny(pattern+s, "/!") {
			return
		}
		want, err := path.Match(pattern, s)
		if err != nil {
			return
		}
		if got != want {
			t.Errorf("Match(%q, %q) = %v, path.Match says %v", pattern, s, got, want)
		}
	})
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
