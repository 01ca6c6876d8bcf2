package initramfs

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"cfsboot/verity"
)

// Command line keys naming the composefs image to boot, as composefs-rs
// (composefs-boot's cmdline.rs) and bootc write them.
const (
	// KeyComposefsDigest is "composefs.digest=[?]v<format>-<hash>-12:<hex>",
	// repeatable: the images are tried in order.
	KeyComposefsDigest = "composefs.digest"
	// KeyComposefs is the legacy "composefs=[?]<hex>" (64 or 128 hex).
	KeyComposefs = "composefs"
)

// ComposefsArg is one composefs image the command line names.
type ComposefsArg struct {
	Key string // KeyComposefsDigest or KeyComposefs
	// Format is the EROFS format version composefs.digest= states (1 or 2;
	// v1 also covers mkcomposefs' v0 layout). 0 for composefs=, which
	// states none: composefs-rs reads it as v2, cfsboot writes it for
	// images of any format.
	Format int
	// Digest is the image's fs-verity digest, with its algorithm.
	Digest verity.Sum
	// Optional is the '?' prefix: composefs-rs' "insecure" mode, where the
	// image's fs-verity is not required. The caller decides whether to
	// allow it at all.
	Optional bool
}

// String renders a as the command line word it was parsed from (with the
// digest in lowercase).
func (a ComposefsArg) String() string {
	q := ""
	if a.Optional {
		q = "?"
	}
	if a.Key == KeyComposefs {
		return KeyComposefs + "=" + q + a.Digest.String()
	}
	return fmt.Sprintf("%s=%sv%d-%s:%s", KeyComposefsDigest, q, a.Format, a.Digest.Algorithm().Spec(), a.Digest)
}

// ParseComposefsDigest parses the value of composefs.digest=:
// an optional '?', "v1" or "v2", "-", "sha256-12" or "sha512-12", ":" and
// the digest in hex of that algorithm's length.
func ParseComposefsDigest(value string) (ComposefsArg, error) {
	a := ComposefsArg{Key: KeyComposefsDigest}
	rest := value
	rest, a.Optional = strings.CutPrefix(rest, "?")
	desc, hexDigest, ok := strings.Cut(rest, ":")
	if !ok {
		return a, fmt.Errorf("%s=%s: want [?]v<format>-<hash>-12:<hex digest>", KeyComposefsDigest, value)
	}
	version, spec, _ := strings.Cut(desc, "-")
	switch version {
	case "v1":
		a.Format = 1
	case "v2":
		a.Format = 2
	default:
		return a, fmt.Errorf("%s=%s: unsupported format version %q (want v1 or v2)", KeyComposefsDigest, value, version)
	}
	alg, err := verity.ParseSpec(spec)
	if err != nil {
		return a, fmt.Errorf("%s=%s: %w", KeyComposefsDigest, value, err)
	}
	if a.Digest, err = verity.ParseSumAlgorithm(alg, hexDigest); err != nil {
		return a, fmt.Errorf("%s=%s: %w", KeyComposefsDigest, value, err)
	}
	return a, nil
}

// ParseComposefsLegacy parses the value of composefs=: an optional '?' and
// a digest of 64 (SHA-256) or 128 (SHA-512) hex digits.
func ParseComposefsLegacy(value string) (ComposefsArg, error) {
	a := ComposefsArg{Key: KeyComposefs}
	hexDigest, optional := strings.CutPrefix(value, "?")
	a.Optional = optional
	var err error
	if a.Digest, err = verity.ParseSum(hexDigest); err != nil {
		return a, fmt.Errorf("%s=%s: %w", KeyComposefs, value, err)
	}
	return a, nil
}

// ErrNoComposefsArg: the command line names no composefs image.
var ErrNoComposefsArg = errors.New("no composefs.digest= or composefs= on the kernel command line")

// ComposefsArgs returns the images the command line words name, in the
// order to try them: every composefs.digest= in command line order (a
// repeat of an earlier one dropped), then the last composefs= (later words
// win, as for every other key; composefs-boot's cmdline.rs also reads
// composefs.digest= first and falls back to composefs=, while
// composefs-setup-root keeps the command line's order). Any malformed
// value is an error, never skipped.
func ComposefsArgs(words []string) ([]ComposefsArg, error) {
	var args []ComposefsArg
	var legacy *ComposefsArg
	for _, w := range words {
		key, value, _ := strings.Cut(w, "=")
		switch key {
		case KeyComposefsDigest:
			a, err := ParseComposefsDigest(value)
			if err != nil {
				return nil, fmt.Errorf("kernel command line: %w", err)
			}
			if !slices.Contains(args, a) { // a repeat names an image already tried
				args = append(args, a)
			}
		case KeyComposefs:
			a, err := ParseComposefsLegacy(value)
			if err != nil {
				return nil, fmt.Errorf("kernel command line: %w", err)
			}
			legacy = &a
		}
	}
	if legacy != nil {
		args = append(args, *legacy)
	}
	if len(args) == 0 {
		return nil, ErrNoComposefsArg
	}
	return args, nil
}
