package tpm

import (
	"strings"

	"cfsboot/verity"
)

// UKISectionOrder is the order in which systemd-stub (257) measures UKI
// sections into PCR 11 (systemd-measure uses the same); .pcrsig is never
// measured. Of several .dtbauto sections the stub measures the one matching
// the machine's devicetree, which a prediction cannot know.
var UKISectionOrder = []string{".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat", ".pcrpkey", ".profile", ".dtbauto", ".hwids"}

// PCR11 is where systemd-stub and systemd-pcrphase measure; PCR15 is the
// default for the composefs digest (system identity).
const (
	PCR11 = 11
	PCR15 = 15
)

// Boot phases systemd-pcrphase measures into PCR 11, in order.
var Phases = []string{"enter-initrd", "leave-initrd", "sysinit", "ready"}

// ComposefsEvent is the string measured for a verified composefs root:
// "composefs:<hex>", the hex's length telling the algorithm (64 for
// SHA-256, 128 for SHA-512).
func ComposefsEvent(d verity.Sum) string { return "composefs:" + d.String() }

// ComposefsInsecureEvent is measured instead when the root was booted
// without fs-verity (a '?' command line entry the initrd allows): no policy
// written for the verified root matches it.
func ComposefsInsecureEvent(d verity.Sum) string { return "composefs-insecure:" + d.String() }

// PhasePrediction is the PCR value after a phase path ("enter-initrd",
// "enter-initrd:leave-initrd", ...).
type PhasePrediction struct {
	Path  string
	Bank  string
	Value []byte
}

// PredictPCR11 returns PCR 11 after the UKI's sections (name -> contents,
// only those present) and after each phase path, from a zero PCR.
func PredictPCR11(sections map[string][]byte, banks []Bank) []PhasePrediction {
	var out []PhasePrediction
	for _, b := range banks {
		v := make([]byte, b.Hash.Size())
		for _, name := range UKISectionOrder {
			data, ok := sections[name]
			if !ok || len(data) == 0 {
				continue
			}
			v = ExtendValue(b, v, EventDigests([]Bank{b}, append([]byte(name), 0))[0].Value)
			v = ExtendValue(b, v, EventDigests([]Bank{b}, data)[0].Value)
		}
		for i, phase := range Phases {
			v = ExtendValue(b, v, EventDigests([]Bank{b}, []byte(phase))[0].Value)
			out = append(out, PhasePrediction{Path: strings.Join(Phases[:i+1], ":"), Bank: b.Name, Value: v})
		}
	}
	return out
}

// PredictComposefs returns a PCR's value after the composefs event alone,
// from zero.
func PredictComposefs(d verity.Sum, b Bank) []byte {
	return ExtendValue(b, make([]byte, b.Hash.Size()), EventDigests([]Bank{b}, []byte(ComposefsEvent(d)))[0].Value)
}
